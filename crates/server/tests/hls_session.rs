//! GetHLSStreamingSessionURL and the session token through the real router, over the embedded
//! archive in a temp dir, with a pinned clock; fragments are committed through `store::Archive`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use media::TrackNumber;
use serde_json::{json, Value};
use server::hls::{self, HlsResource};
use store::*;
use tower::ServiceExt;

struct ManualClock(Mutex<SystemTime>);

impl server::Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

// Codec private data of tests/fixtures/h264_aac.mkv and h265.mkv (its SEI array dropped).
const AVCC: &str =
    "0164000dffe100176764000dacb40a0fd80880000003008000001e078a155001000468ef0fcbfdf8f800";
const HVCC: &str =
    "0101600000009000000000003cf000fcfdf8f800000f03200001001840010c01ffff0160000003009000\
     0003000003003cba0240210001002842010101600000030090000003000003003ca00a080f165ba924ca\
     f0168080000003008000000f0422000100074401c172b46240";
const ASC: &str = "119056e500";

struct T {
    router: axum::Router,
    state: server::AppState,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    json: Value,
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn start_with(configure: impl FnOnce(&mut server::Config)) -> T {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        server::Config::new("127.0.0.1:4567".parse().unwrap(), dir.path().to_path_buf());
    config.public_url = "https://kvs.example.net:8443".into();
    configure(&mut config);
    // Whole seconds, so the epoch-second timestamps botocore sends are exact.
    let now = UNIX_EPOCH
        + Duration::from_secs(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        );
    let clock = Arc::new(ManualClock(Mutex::new(now)));
    let state = server::build(config)
        .await
        .unwrap()
        .with_clock(clock.clone());
    T {
        router: server::ops::router(state.clone()),
        state,
        clock,
        _dir: dir,
    }
}

async fn start() -> T {
    start_with(|_| {}).await
}

impl T {
    fn now(&self) -> SystemTime {
        *self.clock.0.lock().unwrap()
    }

    fn now_ms(&self) -> i64 {
        ms(self.now())
    }

    fn advance(&self, d: Duration) {
        *self.clock.0.lock().unwrap() += d;
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// A signed POST (any well-formed signature is accepted: no credentials configured).
    async fn call(&self, path: &str, body: Value) -> Reply {
        let body = body.to_string();
        let host = "127.0.0.1:4567";
        let headers = [("host", host), ("content-type", "application/json")];
        let creds = sigv4::Credentials {
            access_key_id: "AKIDTEST".into(),
            secret_access_key: "secret".into(),
            session_token: None,
        };
        let params = sigv4::SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service: "kinesisvideo",
            time: self.now(),
        };
        let signed = sigv4::sign(
            &sigv4::Request {
                method: "POST",
                path,
                query: "",
                headers: &headers,
            },
            &sigv4::sha256_hex(body.as_bytes()),
            &params,
        );
        let mut request = Request::post(path)
            .header("host", host)
            .header("content-type", "application/json");
        for (name, value) in signed {
            request = request.header(name, value);
        }
        self.send(request.body(Body::from(body)).unwrap()).await
    }

    async fn session_url(&self, body: Value) -> Reply {
        self.call("/getHLSStreamingSessionURL", body).await
    }

    async fn ok_url(&self, body: Value) -> String {
        let r = self.session_url(body.clone()).await;
        assert_eq!(r.status, 200, "{body}: {}", r.json);
        r.json["HLSStreamingSessionURL"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn err(&self, body: Value, status: u16, error_type: &str) -> String {
        let r = self.session_url(body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.json);
        assert_eq!(
            r.headers["x-amzn-errortype"], error_type,
            "{body}: {}",
            r.json
        );
        assert_eq!(r.json["__type"], error_type);
        r.json["Message"].as_str().unwrap().to_owned()
    }

    async fn create_stream(&self, name: &str, retention_hours: u32) -> StreamRecord {
        let r = self
            .call(
                "/createStream",
                json!({"StreamName": name, "DataRetentionInHours": retention_hours}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.json);
        self.state
            .catalog
            .stream_by_name(name)
            .await
            .unwrap()
            .unwrap()
    }

    /// Commits a fragment of 1 s with one sample per track.
    async fn ingest(
        &self,
        s: &StreamRecord,
        server_ms: i64,
        producer_ms: i64,
        tracks: &[(&str, &str)],
    ) -> FragmentNumber {
        let last = self.state.catalog.last_fragment_number(s.id).await.unwrap();
        let mut rows = Vec::new();
        let mut parts = Vec::new();
        for (i, (codec_id, cpd)) in tracks.iter().enumerate() {
            let track = TrackNumber(i as u64 + 1);
            let config = self
                .state
                .catalog
                .codec_config_for(
                    s.id,
                    &CodecConfig {
                        track,
                        track_type: if codec_id.starts_with('V') { 1 } else { 2 },
                        codec_id: (*codec_id).into(),
                        codec_private: Bytes::from(hex::decode(cpd).unwrap()),
                        track_name: None,
                        pixel_width: None,
                        pixel_height: None,
                        sampling_frequency: None,
                        channels: None,
                    },
                )
                .await
                .unwrap();
            rows.push(FragmentTrack {
                track,
                codec_config: config,
                data_offset: i as u64 * 5,
                data_len: 5,
                samples: vec![SampleEntry {
                    pts_offset_ns: 0,
                    duration_ns: Some(1_000_000_000),
                    size: 5,
                    keyframe: true,
                }],
            });
            parts.push(Bytes::from_static(b"frame"));
        }
        self.state
            .archive
            .persist(PendingFragment {
                parts,
                row: NewFragment {
                    writer_epoch: None,
                    begins_discontinuity: false,
                    stream: s.id,
                    number: FragmentNumber::next(last, Timestamp(server_ms)),
                    producer_timestamp: Timestamp(producer_ms),
                    server_timestamp: Timestamp(server_ms),
                    duration_ms: 1000,
                    cluster_timecode_ms: producer_ms,
                    tracks: rows,
                    tags: vec![],
                    media: MediaLocation {
                        segment: 0,
                        offset: 0,
                        len: 0,
                    },
                },
            })
            .await
            .unwrap()
    }

    /// A stream whose one fragment has `tracks`, and an ON_DEMAND request over it.
    async fn case(&self, now: i64, name: &str, tracks: &[(&str, &str)]) -> Value {
        let s = self.create_stream(name, 24).await;
        self.ingest(&s, now - 5000, now - 5000, tracks).await;
        on_demand(name, now - 10_000, now)
    }

    fn open(&self, url: &str) -> hls::Session {
        let token = token_of(url);
        hls::token::open(
            token,
            &self.state.config.session_keys,
            self.state.clock.timestamp(),
        )
        .unwrap()
    }
}

/// [`hls::authorize`] of an HLS resource (`/hls/v1/`).
async fn authorize_hls(
    t: &T,
    token: &str,
    resource: HlsResource,
) -> Result<(hls::Session, StreamRecord), server::ApiError> {
    hls::authorize(&t.state, token, resource, hls::Protocol::Hls).await
}

/// [`hls::authorize`] of a DASH resource (`/dash/v1/`).
async fn authorize_dash(
    t: &T,
    token: &str,
    resource: HlsResource,
) -> Result<(hls::Session, StreamRecord), server::ApiError> {
    hls::authorize(&t.state, token, resource, hls::Protocol::Dash).await
}

fn token_of(url: &str) -> &str {
    url.split_once("SessionToken=").unwrap().1
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn on_demand(name: &str, start_ms: i64, end_ms: i64) -> Value {
    json!({"StreamName": name, "PlaybackMode": "ON_DEMAND",
        "HLSFragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": secs(start_ms), "EndTimestamp": secs(end_ms)}}})
}

const H264_AAC: &[(&str, &str)] = &[("V_MPEG4/ISO/AVC", AVCC), ("A_AAC", ASC)];

#[tokio::test]
async fn on_demand_session_url_and_its_token() {
    let t = start().await;
    let s = t.create_stream("cam1", 24).await;
    let now = t.now_ms();
    for i in 0..5 {
        t.ingest(
            &s,
            now - 60_000 + i * 1000,
            now - 60_000 + i * 1000,
            H264_AAC,
        )
        .await;
    }
    let body = json!({"StreamName": "cam1", "PlaybackMode": "ON_DEMAND",
        "HLSFragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": secs(now - 120_000), "EndTimestamp": secs(now)}},
        "ContainerFormat": "FRAGMENTED_MP4", "DiscontinuityMode": "ALWAYS",
        "DisplayFragmentTimestamp": "ALWAYS", "Expires": 300, "MaxMediaPlaylistFragmentResults": 1000});
    let url = t.ok_url(body).await;
    let prefix = "https://kvs.example.net:8443/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=";
    assert!(url.starts_with(prefix), "{url}");
    let token = token_of(&url);
    assert!(token.ends_with('~'), "{token}");
    assert!(
        token[..token.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{token}"
    );
    let session = t.open(&url);
    assert_eq!(
        session,
        hls::Session {
            stream_id: s.id,
            stream_creation: s.creation_time,
            stream_name: "cam1".into(),
            mode: hls::session::PlaybackMode::OnDemand,
            selector: TimestampKind::Server,
            start: Some(Timestamp(now - 120_000)),
            end: Some(Timestamp(now)),
            container: hls::session::ContainerFormat::FragmentedMp4,
            discontinuity: hls::session::DiscontinuityMode::Always,
            display_timestamp: true,
            max_fragments: 1000,
            created: Timestamp(now),
            expires: Timestamp(now + 300_000),
            // The timeline's zero: the first fragment's start (checked by the serving tests).
            origin: session.origin,
            protocol: hls::Protocol::Hls,
            display_fragment_number: false,
            wall_offset_ms: 0,
        }
    );
    assert!(session.origin >= Timestamp(now - 120_000) && session.origin <= Timestamp(now));
    // By ARN too; ON_DEMAND defaults to 1000 fragments; PRODUCER_TIMESTAMP → NEVER.
    let url = t
        .ok_url(json!({"StreamARN": s.arn, "PlaybackMode": "ON_DEMAND",
            "HLSFragmentSelector": {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": secs(now - 120_000), "EndTimestamp": secs(now)}}}))
        .await;
    let session = t.open(&url);
    assert_eq!(session.max_fragments, 1000);
    assert_eq!(session.selector, TimestampKind::Producer);
    assert_eq!(
        session.discontinuity,
        hls::session::DiscontinuityMode::Never
    );
    assert!(!session.display_timestamp);
    // Every session gets its own token.
    assert_ne!(
        t.ok_url(on_demand("cam1", now - 120_000, now)).await,
        t.ok_url(on_demand("cam1", now - 120_000, now)).await
    );
}

#[tokio::test]
async fn live_and_live_replay() {
    let t = start().await;
    let s = t.create_stream("cam1", 24).await;
    let now = t.now_ms();
    // Nothing ingested yet.
    let m = t
        .err(
            json!({"StreamName": "cam1"}),
            404,
            "ResourceNotFoundException",
        )
        .await;
    assert!(m.contains("30 seconds"), "{m}");
    t.ingest(&s, now - 10_000, now - 10_000, H264_AAC).await;
    let session = t.open(&t.ok_url(json!({"StreamName": "cam1"})).await);
    assert_eq!(session.mode, hls::session::PlaybackMode::Live);
    assert_eq!(session.max_fragments, 5);
    assert_eq!((session.start, session.end), (None, None));
    assert_eq!(session.expires, Timestamp(now + 300_000));
    // 40 s later the newest fragment ended 39 s ago: LIVE is refused.
    t.advance(Duration::from_secs(40));
    t.err(
        json!({"StreamName": "cam1", "PlaybackMode": "LIVE"}),
        404,
        "ResourceNotFoundException",
    )
    .await;
    // LIVE_REPLAY without End: fragments at or after Start.
    let replay = |start: i64| {
        json!({"StreamName": "cam1", "PlaybackMode": "LIVE_REPLAY",
            "HLSFragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": secs(start)}}})
    };
    let session = t.open(&t.ok_url(replay(now - 20_000)).await);
    assert_eq!(session.mode, hls::session::PlaybackMode::LiveReplay);
    assert_eq!(session.start, Some(Timestamp(now - 20_000)));
    assert_eq!(session.end, None);
    assert_eq!(session.max_fragments, 5);
    // A Start after the newest fragment (e.g. in the future) has no fragment yet: 404.
    t.err(replay(now - 5_000), 404, "ResourceNotFoundException")
        .await;
    t.err(
        replay(t.now_ms() + 60_000),
        404,
        "ResourceNotFoundException",
    )
    .await;
}

#[tokio::test]
async fn preconditions_in_order() {
    let t = start().await;
    let now = t.now_ms();
    // Unknown stream.
    let m = t
        .err(
            on_demand("nope", now - 60_000, now),
            404,
            "ResourceNotFoundException",
        )
        .await;
    assert_eq!(m, "The requested stream is not found or not active.");
    // Retention 0 comes before "no fragments".
    t.create_stream("no-retention", 0).await;
    t.err(
        on_demand("no-retention", now - 60_000, now),
        400,
        "NoDataRetentionException",
    )
    .await;
    // No fragment in range.
    let s = t.create_stream("cam1", 24).await;
    t.ingest(&s, now - 30_000, now - 30_000, H264_AAC).await;
    let m = t
        .err(
            on_demand("cam1", now - 20_000, now),
            404,
            "ResourceNotFoundException",
        )
        .await;
    assert!(m.contains("timestamp range"), "{m}");
    // Start is inclusive, End is inclusive (compared with fragment starts).
    t.ok_url(on_demand("cam1", now - 30_000, now)).await;
    t.ok_url(on_demand("cam1", now - 40_000, now - 30_000))
        .await;
    // A Start before the stream's oldest media is fine (the session starts at the head).
    t.ok_url(on_demand("cam1", now - 86_400_000, now - 1000))
        .await;
}

#[tokio::test]
async fn codec_errors() {
    let t = start().await;
    let now = t.now_ms();
    let body = t.case(now, "vp8", &[("V_VP8", "00")]).await;
    let m = t
        .err(body, 400, "UnsupportedStreamMediaTypeException")
        .await;
    assert!(m.contains("V_VP8") && m.contains("A_AAC"), "{m}");
    let body = t
        .case(
            now,
            "g711",
            &[("V_MPEG4/ISO/AVC", AVCC), ("A_MS/ACM", "01")],
        )
        .await;
    t.err(body, 400, "UnsupportedStreamMediaTypeException")
        .await;
    let body = t
        .case(
            now,
            "no-audio-cpd",
            &[("V_MPEG4/ISO/AVC", AVCC), ("A_AAC", "")],
        )
        .await;
    let m = t.err(body, 400, "MissingCodecPrivateDataException").await;
    assert_eq!(m, "Missing codec private data in fragment for track 2.");
    let body = t
        .case(now, "bad-avcc", &[("V_MPEG4/ISO/AVC", "00000001")])
        .await;
    t.err(body, 400, "InvalidCodecPrivateDataException").await;
    // Audio only and H.265 are fine.
    let body = t.case(now, "audio", &[("A_AAC", ASC)]).await;
    t.ok_url(body).await;
    let body = t.case(now, "hevc", &[("V_MPEGH/ISO/HEVC", HVCC)]).await;
    t.ok_url(body.clone()).await;
    // MPEG_TS: H.265 cannot be; H.264 with AAC can.
    let mut ts = body;
    ts["ContainerFormat"] = json!("MPEG_TS");
    let m = t.err(ts, 400, "UnsupportedStreamMediaTypeException").await;
    assert!(m.contains("MPEG_TS"), "{m}");
    let body = t.case(now, "h264", H264_AAC).await;
    let mut ts = body;
    ts["ContainerFormat"] = json!("MPEG_TS");
    t.ok_url(ts).await;
}

#[tokio::test]
async fn argument_errors() {
    let t = start().await;
    let now = t.now_ms();
    for body in [
        json!({}),
        json!({"StreamName": "s", "PlaybackMode": "ON-DEMAND"}),
        json!({"StreamName": "s", "Expires": 299}),
        json!({"StreamName": "s", "Expires": 43201}),
        json!({"StreamName": "s", "MaxMediaPlaylistFragmentResults": 5001}),
        json!({"StreamName": "s", "PlaybackMode": "ON_DEMAND"}),
        json!({"StreamName": "s", "HLSFragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": secs(now - 1000)}}}),
        on_demand("s", now - 1000, now - 2000),
        on_demand("s", now - 90_000_000, now),
        on_demand("s", now - 1000, now + 60_000),
    ] {
        t.err(body, 400, "InvalidArgumentException").await;
    }
}

#[tokio::test]
async fn expires_bounds_are_server_settings() {
    let t = start_with(|c| c.session_expires_min = 1).await;
    let s = t.create_stream("cam1", 24).await;
    let now = t.now_ms();
    t.ingest(&s, now - 1000, now - 1000, H264_AAC).await;
    let session = t.open(&t.ok_url(json!({"StreamName": "cam1", "Expires": 1})).await);
    assert_eq!(session.expires, Timestamp(now + 1000));
}

/// `[hls_rate_limits] mode = "aws"`, `max_delay_seconds = 0`: over the rate is refused at once.
fn aws_quotas_without_waiting(c: &mut server::Config) {
    c.hls_limits = server::hls::limits::HlsLimits {
        max_delay_seconds: 0.0,
        ..server::hls::limits::HlsLimits::aws()
    };
}

#[tokio::test]
async fn no_rate_limit_by_default() {
    let t = start().await;
    let now = t.now_ms();
    let s = t.create_stream("cam1", 24).await;
    t.ingest(&s, now - 1000, now - 1000, H264_AAC).await;
    // At one pinned instant, far past any of AWS's quotas.
    for _ in 0..200 {
        t.ok_url(json!({"StreamName": "cam1"})).await;
    }
    let token = token_of(&t.ok_url(json!({"StreamName": "cam1"})).await).to_owned();
    for _ in 0..500 {
        authorize_hls(&t, &token, HlsResource::MediaFragment)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn session_url_rate_limit_per_stream() {
    let t = start_with(aws_quotas_without_waiting).await;
    let now = t.now_ms();
    let a = t.create_stream("a", 24).await;
    let b = t.create_stream("b", 24).await;
    t.ingest(&a, now - 1000, now - 1000, H264_AAC).await;
    t.ingest(&b, now - 1000, now - 1000, H264_AAC).await;
    // 25 TPS with a 2-second burst, at one pinned instant: 50 pass, the 51st does not.
    for _ in 0..50 {
        t.ok_url(json!({"StreamName": "a"})).await;
    }
    let m = t
        .err(
            json!({"StreamName": "a"}),
            400,
            "ClientLimitExceededException",
        )
        .await;
    assert!(m.contains("GetHLSStreamingSessionURL"), "{m}");
    t.ok_url(json!({"StreamName": "b"})).await;
    t.advance(Duration::from_millis(40));
    t.ok_url(json!({"StreamName": "a"})).await;
}

#[tokio::test]
async fn authorize_refuses_expired_tampered_and_other_incarnations() {
    let t = start().await;
    let now = t.now_ms();
    let s = t.create_stream("cam1", 24).await;
    t.ingest(&s, now - 1000, now - 1000, H264_AAC).await;
    let url = t.ok_url(json!({"StreamName": "cam1"})).await;
    let token = token_of(&url).to_owned();
    let (session, stream) = authorize_hls(&t, &token, HlsResource::MasterPlaylist)
        .await
        .unwrap();
    assert_eq!(session.stream_id, stream.id);
    assert_eq!(stream.name, "cam1");

    let refused = |r: Result<(hls::Session, StreamRecord), server::ApiError>, message: &str| {
        let e = r.unwrap_err();
        assert_eq!(e.http_status(), 403, "{e}");
        assert_eq!(e.aws_error_type(), "NotAuthorizedException");
        assert_eq!(e.message(), message);
    };
    // Tampered: one character changed.
    let mut chars: Vec<char> = token.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    refused(
        authorize_hls(&t, &tampered, HlsResource::MasterPlaylist).await,
        hls::TOKEN_INVALID,
    );
    refused(
        authorize_hls(&t, "garbage", HlsResource::MasterPlaylist).await,
        hls::TOKEN_INVALID,
    );
    // A session opens its own protocol's resources only: this HLS token no DASH one, and a DASH
    // session's token (same request) no HLS one (docs/wire.md#dash-resources).
    refused(
        authorize_dash(&t, &token, HlsResource::DashManifest).await,
        hls::TOKEN_INVALID,
    );
    let r = t
        .call("/getDASHStreamingSessionURL", json!({"StreamName": "cam1"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    let dash_url = r.json["DASHStreamingSessionURL"].as_str().unwrap();
    assert!(
        dash_url.contains("/dash/v1/getDASHManifest.mpd?SessionToken="),
        "{dash_url}"
    );
    let dash_token = token_of(dash_url);
    let (dash, _) = authorize_dash(&t, dash_token, HlsResource::DashManifest)
        .await
        .unwrap();
    assert_eq!(dash.protocol, hls::Protocol::Dash);
    refused(
        authorize_hls(&t, dash_token, HlsResource::MasterPlaylist).await,
        hls::TOKEN_INVALID,
    );
    // Deleted, then recreated under the same name: the old session serves nothing.
    let r = t.call("/deleteStream", json!({"StreamARN": s.arn})).await;
    assert_eq!(r.status, 200, "{}", r.json);
    refused(
        authorize_hls(&t, &token, HlsResource::MasterPlaylist).await,
        hls::STREAM_GONE,
    );
    let s2 = t.create_stream("cam1", 24).await;
    assert_ne!(s2.id, s.id);
    refused(
        authorize_hls(&t, &token, HlsResource::MediaFragment).await,
        hls::STREAM_GONE,
    );
    t.ingest(&s2, now - 500, now - 500, H264_AAC).await;
    let fresh = token_of(&t.ok_url(json!({"StreamName": "cam1"})).await).to_owned();
    authorize_hls(&t, &fresh, HlsResource::MasterPlaylist)
        .await
        .unwrap();
    // Expired: 300 s later.
    t.advance(Duration::from_secs(300));
    refused(
        authorize_hls(&t, &fresh, HlsResource::MasterPlaylist).await,
        hls::TOKEN_EXPIRED,
    );
}

#[tokio::test]
async fn authorize_applies_the_session_rate_limit() {
    let t = start_with(aws_quotas_without_waiting).await;
    let now = t.now_ms();
    let s = t.create_stream("cam1", 24).await;
    t.ingest(&s, now - 1000, now - 1000, H264_AAC).await;
    let one = token_of(&t.ok_url(json!({"StreamName": "cam1"})).await).to_owned();
    let two = token_of(&t.ok_url(json!({"StreamName": "cam1"})).await).to_owned();
    for _ in 0..10 {
        authorize_hls(&t, &one, HlsResource::MediaPlaylist)
            .await
            .unwrap();
    }
    let e = authorize_hls(&t, &one, HlsResource::MediaPlaylist)
        .await
        .unwrap_err();
    assert_eq!(e.aws_error_type(), "ClientLimitExceededException");
    assert_eq!(e.http_status(), 400);
    // Another session, another resource: unaffected.
    authorize_hls(&t, &two, HlsResource::MediaPlaylist)
        .await
        .unwrap();
    authorize_hls(&t, &one, HlsResource::MediaFragment)
        .await
        .unwrap();
}

#[tokio::test]
async fn sessions_survive_a_restart_with_the_data_dir_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = || server::Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
    let first = server::build(config()).await.unwrap();
    let key_file = dir.path().join(hls::token::KEY_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let keys = first.config.session_keys.clone();
    drop(first);
    let second = server::build(config()).await.unwrap();
    assert_eq!(second.config.session_keys, keys);
    // Configured keys win over the file.
    let mut configured = config();
    configured.session_keys = vec![[9; 32]];
    let third = server::build(configured).await.unwrap();
    assert_eq!(third.config.session_keys, vec![[9; 32]]);
}

#[tokio::test]
async fn data_endpoint_for_hls_is_the_public_url() {
    let t = start().await;
    t.create_stream("cam1", 24).await;
    let r = t
        .call(
            "/getDataEndpoint",
            json!({"StreamName": "cam1", "APIName": "GET_HLS_STREAMING_SESSION_URL"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["DataEndpoint"], "https://kvs.example.net:8443");
}
