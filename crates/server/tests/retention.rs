//! Retention against the embedded archive with a pinned clock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use media::TrackNumber;
use store::*;

struct ManualClock(Mutex<SystemTime>);

impl server::Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn stream(state: &server::AppState, name: &str, retention_hours: u32) -> StreamRecord {
    state
        .catalog
        .create_stream(NewStream {
            name: name.into(),
            arn: format!("arn:aws:kinesisvideo:us-east-1:000000000000:stream/{name}/1"),
            device_name: None,
            media_type: None,
            kms_key_id: "k".into(),
            version: "v".into(),
            creation_time: Timestamp(0),
            data_retention_hours: retention_hours,
            storage_tier: "HOT".into(),
            tags: Default::default(),
        })
        .await
        .unwrap()
}

async fn ingest(state: &server::AppState, s: &StreamRecord, server_ms: i64) -> FragmentNumber {
    let last = state.catalog.last_fragment_number(s.id).await.unwrap();
    let config = state
        .catalog
        .codec_config_for(
            s.id,
            &CodecConfig {
                track: TrackNumber(1),
                track_type: 1,
                codec_id: "V_MPEG4/ISO/AVC".into(),
                codec_private: Bytes::from_static(b"x"),
                track_name: None,
                pixel_width: None,
                pixel_height: None,
                sampling_frequency: None,
                channels: None,
            },
        )
        .await
        .unwrap();
    state
        .archive
        .persist(PendingFragment {
            parts: vec![Bytes::from_static(b"frame")],
            row: NewFragment {
                writer_epoch: None,
                begins_discontinuity: false,
                stream: s.id,
                number: FragmentNumber::next(last, Timestamp(server_ms)),
                producer_timestamp: Timestamp(server_ms),
                server_timestamp: Timestamp(server_ms),
                duration_ms: 1000,
                cluster_timecode_ms: server_ms,
                tracks: vec![FragmentTrack {
                    track: TrackNumber(1),
                    codec_config: config,
                    data_offset: 0,
                    data_len: 5,
                    samples: vec![SampleEntry {
                        pts_offset_ns: 0,
                        duration_ns: None,
                        size: 5,
                        keyframe: true,
                    }],
                }],
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

fn segment_files(dir: &std::path::Path, s: &StreamRecord) -> usize {
    std::fs::read_dir(dir.join("media").join(s.id.0.to_string()))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A server on `dir` whose clock stands still at the returned time until the test moves it.
async fn pinned_server(dir: &std::path::Path) -> (server::AppState, Arc<ManualClock>, SystemTime) {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let clock = Arc::new(ManualClock(Mutex::new(now)));
    let config = server::Config::new("127.0.0.1:0".parse().unwrap(), dir.to_owned());
    let state = server::build(config)
        .await
        .unwrap()
        .with_clock(clock.clone());
    (state, clock, now)
}

#[tokio::test]
async fn old_fragments_and_their_segments_go_recent_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let (state, clock, now) = pinned_server(dir.path()).await;
    let hour = 3_600_000;
    let t = ms(now);

    let one_hour = stream(&state, "one-hour", 1).await;
    let old = ingest(&state, &one_hour, t - 2 * hour).await;
    let fresh = ingest(&state, &one_hour, t - hour / 2).await;

    let zero = stream(&state, "zero", 0).await;
    ingest(&state, &zero, t - 10 * 60_000).await;
    let buffered = ingest(&state, &zero, t - 60_000).await;

    let expired = stream(&state, "expired", 1).await;
    ingest(&state, &expired, t - 3 * hour).await;
    assert_eq!(segment_files(dir.path(), &expired), 1);

    server::retention::run_once(&state).await.unwrap();

    let left = |s: StreamRecord| {
        let state = state.clone();
        async move {
            state
                .catalog
                .latest_fragments(s.id, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|f| f.number)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        left(one_hour.clone()).await,
        [fresh],
        "fragment {old} is past the 1 h retention"
    );
    assert_eq!(
        left(zero.clone()).await,
        [buffered],
        "retention 0 keeps only the 5-minute buffer"
    );
    assert!(left(expired.clone()).await.is_empty());
    assert_eq!(
        segment_files(dir.path(), &expired),
        0,
        "a segment no fragment references is deleted"
    );
    assert_eq!(
        segment_files(dir.path(), &one_hour),
        1,
        "a segment still referenced stays"
    );

    // Time passes: the buffered fragment of the retention-0 stream goes too.
    *clock.0.lock().unwrap() = now + Duration::from_secs(600);
    server::retention::run_once(&state).await.unwrap();
    assert!(left(zero).await.is_empty());
}

/// docs/architecture.md#deletes-and-retention: a pass that finds the stream's segment still being
/// appended to (bytes written, row not yet committed) leaves it, and a later pass, with nothing
/// new to report, deletes it once that append has failed.
#[tokio::test]
async fn a_segment_with_an_append_in_flight_is_deleted_by_a_later_pass() {
    let dir = tempfile::tempdir().unwrap();
    let (state, _clock, now) = pinned_server(dir.path()).await;
    let s = stream(&state, "in-flight", 1).await;
    ingest(&state, &s, ms(now) - 3 * 3_600_000).await;
    let in_flight = state
        .media
        .append(s.id, vec![Bytes::from_static(b"uncommitted")])
        .await
        .unwrap();
    state.media.sync().await.unwrap();

    server::retention::run_once(&state).await.unwrap();
    assert!(state
        .catalog
        .latest_fragments(s.id, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(segment_files(dir.path(), &s), 1, "deletion deferred");

    state.media.settle(s.id, in_flight, false).await;
    server::retention::run_once(&state).await.unwrap();
    assert_eq!(
        segment_files(dir.path(), &s),
        0,
        "deferred deletion retried"
    );
}
