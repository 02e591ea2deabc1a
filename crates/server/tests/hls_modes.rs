//! Media playlists of every playback mode and option, against golden files, on a pinned clock.
//!
//! The stream: ten 1-second video fragments with known server and producer timestamps: a 500 ms
//! gap before fragment 3 (both clocks), a producer timestamp repeated by fragment 6 (it must
//! replace fragment 5 when selecting on producer time), and a codec change at fragment 8.
//! Tokens are replaced by `TOKEN` before comparing; `UPDATE_GOLDEN=1` rewrites the files.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::*;
use media::TrackNumber;
use serde_json::{json, Value};
use store::*;

/// 2027-01-15T08:00:00Z: fixed, so fragment numbers and dates in the golden files are too.
const T0_MS: i64 = 1_800_000_000_000;
/// The two avcC records of tests/fixtures/h264_res_change.mkv (320x240, then 640x360).
const CPD_A: &str =
    "0164000dffe100176764000dacb40a0fd80880000003008000001e078a155001000468ef0fcbfdf8f800";
const CPD_B: &str =
    "0164001effe100196764001eacb405017fcb8088000003000800000301e078b17501000468ef0fcbfdf8f800";

fn at_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms as u64)
}

fn cpd(hex_str: &str) -> Bytes {
    Bytes::from(hex::decode(hex_str).unwrap())
}

/// (server start offset, producer start offset, config) of each fragment, in ms from T0.
fn plan() -> Vec<(i64, i64, u8)> {
    vec![
        (0, 0, 0),
        (1000, 1000, 0),
        (2500, 2500, 0), // 500 ms gap on both clocks
        (3500, 3500, 0),
        (4500, 4500, 0),
        (5500, 5500, 0), // producer time repeated by the next fragment
        (6500, 5500, 0),
        (7500, 7500, 1), // codec change
        (8500, 8500, 1),
        (9500, 9500, 1),
    ]
}

async fn ingest(s: &TestServer, stream: &StreamRecord, upto: usize) {
    // The two configs, created in order once (a producer writes a new row only on a change).
    let mut configs = Vec::new();
    for (id, _) in s.state.catalog.codec_configs(stream.id).await.unwrap() {
        configs.push(id);
    }
    if configs.is_empty() {
        configs.push(
            s.state
                .catalog
                .codec_config_for(stream.id, &config(CPD_A))
                .await
                .unwrap(),
        );
        configs.push(
            s.state
                .catalog
                .codec_config_for(stream.id, &config(CPD_B))
                .await
                .unwrap(),
        );
    }
    let already = s
        .state
        .catalog
        .latest_fragments(stream.id, 100)
        .await
        .unwrap()
        .len();
    for (server_off, producer_off, c) in plan().into_iter().take(upto).skip(already) {
        let last = s
            .state
            .catalog
            .last_fragment_number(stream.id)
            .await
            .unwrap();
        let samples: Vec<SampleEntry> = (0..30)
            .map(|i| SampleEntry {
                pts_offset_ns: i * 33_333_333,
                duration_ns: None,
                size: 4,
                keyframe: i == 0,
            })
            .collect();
        s.state
            .archive
            .persist(PendingFragment {
                parts: vec![Bytes::from(vec![0u8; 120])],
                row: NewFragment {
                    writer_epoch: None,
                    begins_discontinuity: false,
                    stream: stream.id,
                    number: FragmentNumber::next(last, Timestamp(T0_MS + server_off)),
                    producer_timestamp: Timestamp(T0_MS + producer_off),
                    server_timestamp: Timestamp(T0_MS + server_off),
                    duration_ms: 1000,
                    cluster_timecode_ms: T0_MS + producer_off,
                    tracks: vec![FragmentTrack {
                        track: TrackNumber(1),
                        codec_config: configs[usize::from(c)],
                        data_offset: 0,
                        data_len: 120,
                        samples,
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
            .unwrap();
    }
}

fn config(hex_str: &str) -> CodecConfig {
    CodecConfig {
        track: TrackNumber(1),
        track_type: 1,
        codec_id: "V_MPEG4/ISO/AVC".into(),
        codec_private: cpd(hex_str),
        track_name: None,
        pixel_width: None,
        pixel_height: None,
        sampling_frequency: None,
        channels: None,
    }
}

struct Harness {
    s: TestServer,
    clock: std::sync::Arc<ManualClock>,
    stream: StreamRecord,
}

impl Harness {
    async fn new() -> Self {
        let clock = ManualClock::at(at_ms(T0_MS + 20_000));
        let s = start_with_clock(clock.clone()).await;
        let body = json!({"StreamName": "modes", "DataRetentionInHours": 24}).to_string();
        let (status, _) = post_at(
            &s,
            "/createStream",
            &[],
            vec![body.into_bytes()],
            false,
            clock.get(),
        )
        .await;
        assert_eq!(status, 200);
        let stream = s
            .state
            .catalog
            .stream_by_name("modes")
            .await
            .unwrap()
            .unwrap();
        Harness { s, clock, stream }
    }

    /// A GetHLSStreamingSessionURL: the master playlist's path.
    async fn session(&self, request: Value) -> String {
        self.session_of("HLS", request).await
    }

    /// A GetDASHStreamingSessionURL: the manifest's path.
    async fn dash_session(&self, request: Value) -> String {
        self.session_of("DASH", request).await
    }

    /// Get{HLS,DASH}StreamingSessionURL (`protocol`): the path of the URL it answers.
    async fn session_of(&self, protocol: &str, request: Value) -> String {
        let (status, body) = post_at(
            &self.s,
            &format!("/get{protocol}StreamingSessionURL"),
            &[],
            vec![request.to_string().into_bytes()],
            false,
            self.clock.get(),
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let url: Value = serde_json::from_slice(&body).unwrap();
        let url = url[format!("{protocol}StreamingSessionURL")]
            .as_str()
            .unwrap();
        let dir = format!("/{}/", protocol.to_lowercase());
        url[url.find(&dir).unwrap()..].to_owned()
    }

    /// The manifest's text as served (its token still in it).
    async fn mpd(&self, path: &str) -> String {
        let (status, _, body) = get(&self.s, path).await;
        let text = String::from_utf8(body).unwrap();
        assert_eq!(status, 200, "{text}");
        text
    }

    /// The numbers of the stream's newest `n` fragments, oldest first.
    async fn newest(&self, n: usize) -> Vec<String> {
        let mut newest: Vec<String> = self
            .s
            .state
            .catalog
            .latest_fragments(self.stream.id, n)
            .await
            .unwrap()
            .iter()
            .map(|f| f.number.to_string())
            .collect();
        newest.sort();
        newest
    }

    async fn media_playlist(&self, master_path: &str) -> String {
        let token = master_path.split("SessionToken=").nth(1).unwrap();
        let path = format!("/hls/v1/getHLSMediaPlaylist.m3u8?SessionToken={token}&TrackNumber=1");
        let (status, _, body) = get(&self.s, &path).await;
        let text = String::from_utf8(body).unwrap();
        assert_eq!(status, 200, "{text}");
        text.replace(token, "TOKEN")
    }
}

fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(actual, expected, "golden file {name}");
}

fn range(selector: &str, start_ms: i64, end_ms: Option<i64>) -> Value {
    let mut r = json!({"StartTimestamp": start_ms as f64 / 1000.0});
    if let Some(end) = end_ms {
        r["EndTimestamp"] = json!(end as f64 / 1000.0);
    }
    json!({"FragmentSelectorType": selector, "TimestampRange": r})
}

#[tokio::test]
async fn on_demand_playlists_for_every_selector_and_discontinuity_mode() {
    let h = Harness::new().await;
    ingest(&h.s, &h.stream, 10).await;
    for (name, selector, mode, display) in [
        (
            "on_demand_server_default.m3u8",
            "SERVER_TIMESTAMP",
            None,
            "NEVER",
        ),
        (
            "on_demand_server_never_dates.m3u8",
            "SERVER_TIMESTAMP",
            Some("NEVER"),
            "ALWAYS",
        ),
        (
            "on_demand_server_on_discontinuity.m3u8",
            "SERVER_TIMESTAMP",
            Some("ON_DISCONTINUITY"),
            "NEVER",
        ),
        (
            "on_demand_producer_default_dates.m3u8",
            "PRODUCER_TIMESTAMP",
            None,
            "ALWAYS",
        ),
        (
            "on_demand_producer_always.m3u8",
            "PRODUCER_TIMESTAMP",
            Some("ALWAYS"),
            "NEVER",
        ),
        (
            "on_demand_producer_on_discontinuity.m3u8",
            "PRODUCER_TIMESTAMP",
            Some("ON_DISCONTINUITY"),
            "NEVER",
        ),
    ] {
        let mut request = json!({
            "StreamName": "modes",
            "PlaybackMode": "ON_DEMAND",
            "HLSFragmentSelector": range(selector, T0_MS, Some(T0_MS + 10_000)),
            "DisplayFragmentTimestamp": display,
        });
        if let Some(mode) = mode {
            request["DiscontinuityMode"] = json!(mode);
        }
        let master = h.session(request).await;
        let playlist = h.media_playlist(&master).await;
        golden(name, &playlist);
    }
    // MaxMediaPlaylistFragmentResults keeps the oldest N.
    let master = h
        .session(json!({
            "StreamName": "modes", "PlaybackMode": "ON_DEMAND", "MaxMediaPlaylistFragmentResults": 3,
            "HLSFragmentSelector": range("SERVER_TIMESTAMP", T0_MS + 1000, Some(T0_MS + 10_000)),
        }))
        .await;
    golden("on_demand_max3.m3u8", &h.media_playlist(&master).await);
}

#[tokio::test]
async fn live_replay_reveals_fragments_as_their_durations_elapse() {
    let h = Harness::new().await;
    ingest(&h.s, &h.stream, 10).await;
    let master = h
        .session(json!({
            "StreamName": "modes", "PlaybackMode": "LIVE_REPLAY", "MaxMediaPlaylistFragmentResults": 3,
            "HLSFragmentSelector": range("SERVER_TIMESTAMP", T0_MS + 1000, Some(T0_MS + 8600)),
        }))
        .await;
    let created = h.clock.get();
    golden("live_replay_at_0s.m3u8", &h.media_playlist(&master).await);
    h.clock.set(created + Duration::from_millis(2500));
    golden("live_replay_at_2.5s.m3u8", &h.media_playlist(&master).await);
    h.clock.set(created + Duration::from_secs(60));
    let ended = h.media_playlist(&master).await;
    assert!(ended.ends_with("#EXT-X-ENDLIST\n"), "{ended}");
    golden("live_replay_ended.m3u8", &ended);
}

#[tokio::test]
async fn live_window_numbers_are_stable_across_reloads() {
    for (mode, suffix) in [
        (None, "default"),
        (Some("NEVER"), "never"),
        (Some("ON_DISCONTINUITY"), "on_discontinuity"),
    ] {
        let h = Harness::new().await;
        ingest(&h.s, &h.stream, 5).await;
        h.clock.set(at_ms(T0_MS + 5_000));
        let mut request = json!({"StreamName": "modes", "PlaybackMode": "LIVE", "MaxMediaPlaylistFragmentResults": 3});
        if let Some(mode) = mode {
            request["DiscontinuityMode"] = json!(mode);
        }
        let master = h.session(request).await;
        let before = h.media_playlist(&master).await;
        assert_eq!(
            before,
            h.media_playlist(&master).await,
            "a reload with nothing new is identical"
        );
        // Five more fragments arrive: the window slides, numbering continues.
        ingest(&h.s, &h.stream, 10).await;
        let after = h.media_playlist(&master).await;
        golden(&format!("live_{suffix}_before.m3u8"), &before);
        golden(&format!("live_{suffix}_after.m3u8"), &after);
    }
}

#[tokio::test]
async fn a_live_session_outlives_a_producer_pause() {
    let h = Harness::new().await;
    ingest(&h.s, &h.stream, 3).await;
    h.clock.set(at_ms(T0_MS + 3_000));
    let master = h
        .session(json!({"StreamName": "modes", "PlaybackMode": "LIVE", "MaxMediaPlaylistFragmentResults": 3,
                        "DiscontinuityMode": "NEVER"}))
        .await;
    let before = h.media_playlist(&master).await;
    // The producer goes quiet for a minute: the session keeps answering with the last window.
    h.clock.set(at_ms(T0_MS + 63_000));
    assert_eq!(h.media_playlist(&master).await, before);
    // It comes back 60 s later: the new fragment follows after a discontinuity, numbering goes on.
    let last =
        h.s.state
            .catalog
            .last_fragment_number(h.stream.id)
            .await
            .unwrap();
    let config = h.s.state.catalog.codec_configs(h.stream.id).await.unwrap()[0].0;
    let samples: Vec<SampleEntry> = (0..30)
        .map(|i| SampleEntry {
            pts_offset_ns: i * 33_333_333,
            duration_ns: None,
            size: 4,
            keyframe: i == 0,
        })
        .collect();
    h.s.state
        .archive
        .persist(PendingFragment {
            parts: vec![Bytes::from(vec![0u8; 120])],
            row: NewFragment {
                writer_epoch: None,
                begins_discontinuity: false,
                stream: h.stream.id,
                number: FragmentNumber::next(last, Timestamp(T0_MS + 62_500)),
                producer_timestamp: Timestamp(T0_MS + 62_500),
                server_timestamp: Timestamp(T0_MS + 62_500),
                duration_ms: 1000,
                cluster_timecode_ms: T0_MS + 62_500,
                tracks: vec![FragmentTrack {
                    track: TrackNumber(1),
                    codec_config: config,
                    data_offset: 0,
                    data_len: 120,
                    samples,
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
        .unwrap();
    let after = h.media_playlist(&master).await;
    assert!(before.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{before}");
    assert!(after.contains("#EXT-X-MEDIA-SEQUENCE:1\n"), "{after}");
    let tail = after.split("FragmentNumber=").last().unwrap();
    assert!(
        tail.starts_with(&format!(
            "{:047}",
            FragmentNumber::next(last, Timestamp(T0_MS + 62_500)).0
        )),
        "{after}"
    );
    let lines: Vec<&str> = after.lines().collect();
    let last_extinf = lines
        .iter()
        .rposition(|l| l.starts_with("#EXTINF"))
        .unwrap();
    assert_eq!(
        lines[last_extinf - 1],
        "#EXT-X-DISCONTINUITY",
        "the resumed fragment starts a new timeline:\n{after}"
    );
    assert_eq!(
        after.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "only the resumed fragment starts a new timeline:\n{after}"
    );
}

/// The `kvs:fn` values of a manifest's `S` elements, in order.
fn kvs_fns(mpd: &str) -> Vec<String> {
    mpd.split("kvs:fn=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
        .collect()
}

fn token_of(path: &str) -> &str {
    path.split("SessionToken=").nth(1).unwrap()
}

/// A DASH LIVE manifest is shared like the HLS LIVE playlist (`hls::serve::live_shared`) and
/// stays right: a reload with nothing new is the same text; each session gets its own token and
/// its own display options (they are written per request, not shared); when fragments arrive the
/// window moves to the newest ones (into a new Period at the codec change); and the HLS LIVE
/// playlist of the same stream, kept in the same cache, is still its playlist.
#[tokio::test]
async fn a_live_dash_manifest_is_shared_and_advances_as_fragments_arrive() {
    let h = Harness::new().await;
    ingest(&h.s, &h.stream, 5).await;
    h.clock.set(at_ms(T0_MS + 5_000));
    let live =
        json!({"StreamName": "modes", "PlaybackMode": "LIVE", "MaxManifestFragmentResults": 3});
    let plain = h.dash_session(live.clone()).await;
    let mut numbered_request = live.clone();
    numbered_request["DisplayFragmentNumber"] = json!("ALWAYS");
    let numbered = h.dash_session(numbered_request).await;
    let hls = h
        .session(json!({"StreamName": "modes", "PlaybackMode": "LIVE", "MaxMediaPlaylistFragmentResults": 3}))
        .await;

    let before = h.mpd(&plain).await;
    assert!(before.contains("type=\"dynamic\""), "{before}");
    assert_eq!(before, h.mpd(&plain).await, "a reload with nothing new");
    assert_eq!(before.matches("<S ").count(), 3, "{before}");
    assert!(kvs_fns(&before).is_empty(), "{before}");
    assert!(before.contains(token_of(&plain)), "{before}");
    let with_numbers = h.mpd(&numbered).await;
    assert_eq!(kvs_fns(&with_numbers), h.newest(3).await, "{with_numbers}");
    assert!(
        with_numbers.contains(token_of(&numbered)) && !with_numbers.contains(token_of(&plain)),
        "{with_numbers}"
    );
    let playlist = h.media_playlist(&hls).await;
    assert_eq!(playlist.matches("#EXTINF").count(), 3, "{playlist}");

    // Five more fragments arrive, the last three after a codec change.
    ingest(&h.s, &h.stream, 10).await;
    let after = h.mpd(&numbered).await;
    assert_ne!(after, with_numbers);
    assert_eq!(kvs_fns(&after), h.newest(3).await, "{after}");
    assert!(after.contains("<Period id=\"1.1\""), "{after}");
    assert_ne!(h.mpd(&plain).await, before);
    let playlist_after = h.media_playlist(&hls).await;
    assert_ne!(playlist_after, playlist);
    assert_eq!(
        playlist_after.matches("#EXTINF").count(),
        3,
        "{playlist_after}"
    );
}
