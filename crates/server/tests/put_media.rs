//! PutMedia against the real server on a socket, with a raw HTTP/1.1 client so the test controls
//! chunking, `Expect: 100-continue` and timing exactly as libcurl-based producers do.

use std::time::{Duration, SystemTime};

use media::mkv::writer::{MasterSize, MkvWriter};
use media::mkv::Track;
use media::TrackNumber;
use serde_json::Value;
use store::{FragmentQuery, Timestamp, TimestampKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::*;

fn tracks() -> Vec<Track> {
    vec![
        Track {
            number: TrackNumber(1),
            uid: Some(1),
            track_type: 1,
            codec_id: "V_MPEG4/ISO/AVC".into(),
            codec_private: Some(bytes::Bytes::from_static(&[
                1, 0x42, 0, 0x1e, 0xff, 0xe0, 0,
            ])),
            name: Some("kvs_video_track".into()),
            default_duration_ns: None,
            pixel_width: Some(320),
            pixel_height: Some(240),
            sampling_frequency: None,
            channels: None,
        },
        Track {
            number: TrackNumber(2),
            uid: Some(2),
            track_type: 2,
            codec_id: "A_AAC".into(),
            codec_private: Some(bytes::Bytes::from_static(&[0x11, 0x90])),
            name: Some("kvs_audio_track".into()),
            default_duration_ns: None,
            pixel_width: None,
            pixel_height: None,
            sampling_frequency: Some(48000.0),
            channels: Some(2),
        },
    ]
}

/// KVS producer SDK style MKV (docs/wire.md#putmedia-body): 8-byte sizes, unknown-size Segment and Clusters,
/// absolute ms timecodes, audio without the key-frame bit.
fn producer_mkv(first_timecode: u64, clusters: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut w = MkvWriter::kvs();
    w.ebml_header("matroska")
        .start_segment(MasterSize::Unknown)
        .info(1_000_000)
        .tracks(&tracks());
    let mut frames = Vec::new();
    for c in 0..clusters {
        w.start_cluster(first_timecode + c as u64 * 1000, MasterSize::Unknown);
        for i in 0..10u8 {
            let v = [c as u8, i, 0xAA].repeat(50 + i as usize);
            let a = [c as u8, i, 0x55].repeat(7);
            w.simple_block(1, i16::from(i) * 100, i == 0, &v);
            w.simple_block(2, i16::from(i) * 100 + 1, false, &a);
            frames.push(v);
            frames.push(a);
        }
    }
    (w.finish(), frames)
}

fn split(bytes: &[u8], size: usize) -> Vec<Vec<u8>> {
    bytes.chunks(size).map(<[u8]>::to_vec).collect()
}

#[tokio::test]
async fn producer_sdk_style_ingest_is_acknowledged_and_stored_byte_exact() {
    let s = start().await;
    create_stream(&s, "cam1").await;
    let t0 = 1_700_000_000_000u64;
    let (mkv, frames) = producer_mkv(t0, 3);
    let headers = [
        ("x-amzn-stream-name", "cam1"),
        ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
        ("x-amzn-producer-start-timestamp", "1795570809.39"),
        ("x-amzn-fragment-acknowledgment-required", "1"),
    ];
    let (status, body) = post(&s, "/putMedia", &headers, split(&mkv, 65_524), true).await;
    assert_eq!(status, 200);
    let acks = parse_acks(&body);
    assert_eq!(count(&acks, "BUFFERING"), 3);
    assert_eq!(count(&acks, "RECEIVED"), 3);
    assert_eq!(count(&acks, "PERSISTED"), 3, "acks: {acks:?}");
    assert_eq!(count(&acks, "ERROR"), 0);
    let persisted: Vec<&Value> = acks
        .iter()
        .filter(|a| a["EventType"] == "PERSISTED")
        .collect();
    for (i, a) in persisted.iter().enumerate() {
        assert_eq!(
            a["FragmentTimecode"],
            t0 + i as u64 * 1000,
            "FragmentTimecode echoes the cluster timecode"
        );
        assert_eq!(a["FragmentNumber"].as_str().unwrap().len(), 47);
    }

    let stream = s
        .state
        .catalog
        .stream_by_name("cam1")
        .await
        .unwrap()
        .unwrap();
    let stored = s
        .state
        .catalog
        .query_fragments(FragmentQuery {
            stream: stream.id,
            kind: TimestampKind::Producer,
            start: Timestamp(0),
            end: Timestamp(i64::MAX),
            after: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 3);
    let mut expected_video = Vec::new();
    let mut expected_audio = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        if i % 2 == 0 {
            expected_video.push(f.clone())
        } else {
            expected_audio.push(f.clone())
        }
    }
    for (c, f) in stored.iter().enumerate() {
        assert_eq!(
            f.producer_timestamp,
            Timestamp((t0 + c as u64 * 1000) as i64)
        );
        assert_eq!(
            f.number.to_string(),
            persisted[c]["FragmentNumber"].as_str().unwrap()
        );
        assert_eq!(
            f.duration_ms, 1000,
            "track 1's span (docs/choices.md#fragment-length): 900 ms plus one 100 ms step; the \
             audio frames (1 ms later) do not lengthen it, so the fragments tile"
        );
        let bytes = s
            .state
            .media
            .read(stream.id, f.media, 0..f.media.len)
            .await
            .unwrap();
        let video = &f.tracks[0];
        let audio = &f.tracks[1];
        let v: Vec<u8> = expected_video[c * 10..c * 10 + 10].concat();
        let a: Vec<u8> = expected_audio[c * 10..c * 10 + 10].concat();
        assert_eq!(
            &bytes[video.data_offset as usize..][..video.data_len as usize],
            &v[..],
            "video samples byte-identical and contiguous"
        );
        assert_eq!(
            &bytes[audio.data_offset as usize..][..audio.data_len as usize],
            &a[..]
        );
        assert!(video.samples[0].keyframe && !video.samples[1].keyframe);
    }
}

/// AWS's C producer SDK parses each HTTP chunk of the ack stream as one ack (at most 1,024 bytes,
/// the upload handle read once per chunk) and finds `x-amzn-RequestId` case-sensitively. A fast
/// upload makes many acks ready at once: each must still be its own chunk.
#[tokio::test]
async fn every_ack_is_its_own_http_chunk_and_the_request_id_is_spelt_as_aws_does() {
    let s = start().await;
    create_stream(&s, "cam1").await;
    let (mkv, _) = producer_mkv(1_700_000_000_000, 40);
    let headers = [
        ("x-amzn-stream-name", "cam1"),
        ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
        ("x-amzn-producer-start-timestamp", "1795570809.39"),
    ];
    // One body chunk: every fragment arrives before the first commit finishes.
    let raw = post_raw_at(
        &s,
        "/putMedia",
        &headers,
        vec![mkv],
        true,
        SystemTime::now(),
    )
    .await;
    let (head, chunks) = http_chunks(&raw);
    assert!(head.contains("\r\nx-amzn-RequestId: "), "{head}");
    assert_eq!(
        chunks.len(),
        3 * 40,
        "one chunk per BUFFERING, RECEIVED and PERSISTED ack"
    );
    for chunk in &chunks {
        assert!(chunk.len() <= 1024);
        assert_eq!(
            chunk.iter().filter(|b| **b == b'\n').count(),
            1,
            "{:?}",
            String::from_utf8_lossy(chunk)
        );
        assert_eq!(chunk.last(), Some(&b'\n'));
        let ack: Value = serde_json::from_slice(chunk).unwrap();
        assert!(ack["EventType"].is_string());
    }
}

#[tokio::test]
async fn relative_timecodes_add_the_producer_start_timestamp() {
    let s = start().await;
    create_stream(&s, "rel").await;
    let (mkv, _) = producer_mkv(0, 2);
    let headers = [
        ("x-amzn-stream-name", "rel"),
        ("x-amzn-fragment-timecode-type", "RELATIVE"),
        ("x-amzn-producer-start-timestamp", "1700000000.5"),
    ];
    let (status, body) = post(&s, "/putMedia", &headers, split(&mkv, 1000), true).await;
    assert_eq!(status, 200);
    assert_eq!(count(&parse_acks(&body), "PERSISTED"), 2);
    let stream = s
        .state
        .catalog
        .stream_by_name("rel")
        .await
        .unwrap()
        .unwrap();
    let latest = s
        .state
        .catalog
        .latest_fragments(stream.id, 10)
        .await
        .unwrap();
    let ts: Vec<i64> = latest.iter().map(|f| f.producer_timestamp.0).collect();
    assert_eq!(ts, [1_700_000_000_500, 1_700_000_001_500]);
}

#[tokio::test]
async fn bad_input_gets_error_acks_and_keeps_earlier_fragments() {
    let s = start().await;
    create_stream(&s, "bad").await;
    let headers = [
        ("x-amzn-stream-name", "bad"),
        ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
    ];

    // One good cluster, then a frame for track 3 (not in the header), then a cluster going backwards.
    let mut w = MkvWriter::kvs();
    w.ebml_header("matroska")
        .start_segment(MasterSize::Unknown)
        .info(1_000_000)
        .tracks(&tracks());
    w.start_cluster(10_000, MasterSize::Unknown)
        .simple_block(1, 0, true, b"ok")
        .simple_block(2, 0, false, b"a");
    w.start_cluster(11_000, MasterSize::Unknown)
        .simple_block(3, 0, true, b"x");
    w.start_cluster(9_000, MasterSize::Unknown)
        .simple_block(1, 0, true, b"back")
        .simple_block(2, 0, false, b"a");
    w.start_cluster(12_000, MasterSize::Unknown)
        .simple_block(1, 0, false, b"nokey")
        .simple_block(2, 0, false, b"a");
    w.start_cluster(13_000, MasterSize::Unknown)
        .simple_block(1, 0, true, b"ok2")
        .simple_block(2, 0, false, b"a");
    let (status, body) = post(&s, "/putMedia", &headers, split(&w.finish(), 7), true).await;
    assert_eq!(status, 200);
    let acks = parse_acks(&body);
    let errors: Vec<u64> = acks
        .iter()
        .filter(|a| a["EventType"] == "ERROR")
        .map(|a| a["ErrorId"].as_u64().unwrap())
        .collect();
    assert_eq!(errors, [4010, 4004, 4006], "acks: {acks:?}");
    assert_eq!(
        count(&acks, "PERSISTED"),
        2,
        "the good clusters before and after the bad ones are stored"
    );

    // Random bytes: 4006, and the earlier fragments are still there.
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (status, body) = post(&s, "/putMedia", &headers, split(&noise, 100), true).await;
    assert_eq!(status, 200);
    let acks = parse_acks(&body);
    assert_eq!(acks.last().unwrap()["ErrorId"], 4006, "acks: {acks:?}");
    let stream = s
        .state
        .catalog
        .stream_by_name("bad")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.state
            .catalog
            .latest_fragments(stream.id, 10)
            .await
            .unwrap()
            .len(),
        2
    );

    // Unknown stream: an AWS error before any ack.
    let (status, body) = post(
        &s,
        "/putMedia",
        &[
            ("x-amzn-stream-name", "nope"),
            ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
        ],
        vec![b"x".to_vec()],
        true,
    )
    .await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("not found"));
}

#[tokio::test]
async fn a_second_concurrent_put_media_is_refused() {
    let s = start().await;
    create_stream(&s, "one").await;
    let headers = [
        ("x-amzn-stream-name", "one"),
        ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
    ];
    // The first connection sends its header and then stalls inside a cluster.
    let (mkv, _) = producer_mkv(1000, 1);
    let stream = TcpStream::connect(s.addr).await.unwrap();
    let host = s.addr.to_string();
    let mut hdrs: Vec<(&str, &str)> = vec![("host", &host)];
    hdrs.extend_from_slice(&headers);
    let creds = sigv4::Credentials {
        access_key_id: "A".into(),
        secret_access_key: "s".into(),
        session_token: None,
    };
    let signed = sigv4::sign(
        &sigv4::Request {
            method: "POST",
            path: "/putMedia",
            query: "",
            headers: &hdrs,
        },
        sigv4::EMPTY_SHA256,
        &sigv4::SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service: "kinesisvideo",
            time: SystemTime::now(),
        },
    );
    let mut head = String::from("POST /putMedia HTTP/1.1\r\ntransfer-encoding: chunked\r\n");
    for (k, v) in hdrs
        .iter()
        .copied()
        .chain(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let (_rd, mut wr) = stream.into_split();
    wr.write_all(head.as_bytes()).await.unwrap();
    let half = &mkv[..mkv.len() / 2];
    wr.write_all(format!("{:x}\r\n", half.len()).as_bytes())
        .await
        .unwrap();
    wr.write_all(half).await.unwrap();
    wr.write_all(b"\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (status, body) = post(&s, "/putMedia", &headers, vec![mkv.clone()], true).await;
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("ConnectionLimitExceededException"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    drop(wr);
}

/// Opens a PutMedia connection by hand and returns its write half and a task collecting the raw
/// response, so a test can pause between clusters.
async fn open_put_media(
    s: &TestServer,
    stream: &str,
) -> (
    tokio::net::tcp::OwnedWriteHalf,
    tokio::task::JoinHandle<Vec<u8>>,
) {
    let host = s.addr.to_string();
    let hdrs: Vec<(&str, &str)> = vec![
        ("host", &host),
        ("x-amzn-stream-name", stream),
        ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
    ];
    let creds = sigv4::Credentials {
        access_key_id: "A".into(),
        secret_access_key: "s".into(),
        session_token: None,
    };
    let signed = sigv4::sign(
        &sigv4::Request {
            method: "POST",
            path: "/putMedia",
            query: "",
            headers: &hdrs,
        },
        sigv4::EMPTY_SHA256,
        &sigv4::SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service: "kinesisvideo",
            time: SystemTime::now(),
        },
    );
    let mut head = String::from(
        "POST /putMedia HTTP/1.1\r\ntransfer-encoding: chunked\r\nconnection: close\r\n",
    );
    for (k, v) in hdrs
        .iter()
        .copied()
        .chain(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let (mut rd, mut wr) = TcpStream::connect(s.addr).await.unwrap().into_split();
    wr.write_all(head.as_bytes()).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut raw = Vec::new();
        let _ = rd.read_to_end(&mut raw).await;
        raw
    });
    (wr, reader)
}

async fn send_chunk(wr: &mut tokio::net::tcp::OwnedWriteHalf, data: &[u8]) {
    wr.write_all(format!("{:x}\r\n", data.len()).as_bytes())
        .await
        .unwrap();
    wr.write_all(data).await.unwrap();
    wr.write_all(b"\r\n").await.unwrap();
}

fn header_and_cluster(timecode: u64, with_header: bool) -> Vec<u8> {
    let mut w = MkvWriter::kvs();
    if with_header {
        w.ebml_header("matroska")
            .start_segment(MasterSize::Unknown)
            .info(1_000_000)
            .tracks(&tracks());
    }
    w.start_cluster(timecode, MasterSize::Unknown)
        .simple_block(1, 0, true, b"key")
        .simple_block(2, 0, false, b"aac");
    w.as_bytes().to_vec()
}

#[tokio::test]
async fn a_connection_past_its_maximum_duration_is_closed_with_4003() {
    let limits = server::ingest::fragment::IngestLimits {
        max_connection_duration: Duration::from_millis(300),
        ..Default::default()
    };
    let (s, _) = start_with(
        server::ingest::IngestState::with_limits(limits),
        std::future::pending(),
    )
    .await;
    create_stream(&s, "long").await;
    let (mut wr, reader) = open_put_media(&s, "long").await;
    send_chunk(&mut wr, &header_and_cluster(1000, true)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    send_chunk(&mut wr, &header_and_cluster(2000, false)).await;
    let _ = wr.write_all(b"0\r\n\r\n").await;
    let (status, body) = parse_response(&reader.await.unwrap());
    assert_eq!(status, 200);
    let acks = parse_acks(&body);
    assert_eq!(
        count(&acks, "PERSISTED"),
        1,
        "the fragment completed in time is kept: {acks:?}"
    );
    let errors: Vec<_> = acks
        .iter()
        .filter(|a| a["EventType"] == "ERROR")
        .map(|a| (a["ErrorId"].clone(), a["FragmentTimecode"].clone()))
        .collect();
    assert_eq!(
        errors,
        [(serde_json::json!(4003), serde_json::json!(2000))],
        "{acks:?}"
    );
}

#[tokio::test]
async fn shutdown_persists_what_was_received_and_reports_the_fragment_in_progress() {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (s, served) = start_with(server::ingest::IngestState::new(), async move {
        let _ = stop_rx.await;
    })
    .await;
    create_stream(&s, "stopping").await;
    let (mut wr, reader) = open_put_media(&s, "stopping").await;
    // Cluster 1000 is complete once cluster 2000 starts; cluster 2000 is still arriving.
    send_chunk(&mut wr, &header_and_cluster(1000, true)).await;
    send_chunk(&mut wr, &header_and_cluster(2000, false)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_tx.send(()).unwrap();
    let (status, body) = parse_response(
        &tokio::time::timeout(Duration::from_secs(20), reader)
            .await
            .unwrap()
            .unwrap(),
    );
    assert_eq!(status, 200);
    let acks = parse_acks(&body);
    let persisted: Vec<_> = acks
        .iter()
        .filter(|a| a["EventType"] == "PERSISTED")
        .map(|a| a["FragmentTimecode"].clone())
        .collect();
    assert_eq!(persisted, [serde_json::json!(1000)], "{acks:?}");
    let last = acks.last().unwrap();
    assert_eq!(
        (
            last["EventType"].as_str(),
            last["FragmentTimecode"].as_u64()
        ),
        (Some("ERROR"), Some(2000)),
        "{acks:?}"
    );
    tokio::time::timeout(Duration::from_secs(20), served)
        .await
        .expect("serve returns after shutdown")
        .unwrap()
        .unwrap();
    let stream = s
        .state
        .catalog
        .stream_by_name("stopping")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.state
            .catalog
            .latest_fragments(stream.id, 10)
            .await
            .unwrap()
            .len(),
        1,
        "nothing half-written"
    );
    drop(wr);
}

#[tokio::test]
async fn a_put_media_quiet_for_longer_than_the_connection_timeouts_goes_on() {
    // The header-read and idle timeouts apply between requests, never to a body streaming in.
    let s = start_with_config(|c| {
        c.connections.header_read_timeout = Duration::from_secs(1);
        c.connections.idle_timeout = Duration::from_secs(1);
    })
    .await;
    create_stream(&s, "quiet").await;
    let (mut wr, reader) = open_put_media(&s, "quiet").await;
    send_chunk(&mut wr, &header_and_cluster(1000, true)).await;
    for timecode in [2000, 3000] {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        send_chunk(&mut wr, &header_and_cluster(timecode, false)).await;
    }
    wr.write_all(b"0\r\n\r\n").await.unwrap();
    let (status, body) = parse_response(&reader.await.unwrap());
    assert_eq!(status, 200);
    let acks = parse_acks(&body);
    assert_eq!(count(&acks, "PERSISTED"), 3, "{acks:?}");
    assert_eq!(count(&acks, "ERROR"), 0, "{acks:?}");
}

/// How a producer's connection goes away in the middle of a cluster.
#[derive(Clone, Copy, Debug)]
enum Drop {
    /// A reset (SO_LINGER 0), as when the camera's process dies with data unsent.
    Reset,
    /// A plain close in the middle of an HTTP chunk.
    CloseMidChunk,
}

/// A producer streams cluster 1000 and part of the next, loses its connection while the server
/// is still at work on what it sent, and reconnects at once: the new connection is taken (200,
/// acks), not refused with ConnectionLimitExceededException, and cluster 1000 is kept.
async fn reconnect_after(how: Drop) {
    let s = start().await;
    create_stream(&s, "cam").await;
    let stream = s
        .state
        .catalog
        .stream_by_name("cam")
        .await
        .unwrap()
        .unwrap();
    let (mut wr, reader) = open_put_media(&s, "cam").await;
    send_chunk(&mut wr, &header_and_cluster(1000, true)).await;
    // The server holds the stream for this connection.
    let claimed = tokio::time::timeout(Duration::from_secs(10), async {
        while s.state.ingest.active_connections() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(claimed.is_ok(), "the PutMedia never started");
    let next = header_and_cluster(2000, false);
    match how {
        Drop::Reset => {
            // Cluster 2000 starting completes cluster 1000. A reset loses the bytes the server
            // has not read yet: only what was stored before it must stay.
            send_chunk(&mut wr, &next).await;
            let stored = tokio::time::timeout(Duration::from_secs(10), async {
                while s
                    .state
                    .catalog
                    .latest_fragments(stream.id, 10)
                    .await
                    .unwrap()
                    .is_empty()
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
            assert!(stored.is_ok(), "cluster 1000 not stored");
            // Cluster 3000 starts (2000 is complete and being committed), then the reset.
            let more = header_and_cluster(3000, false);
            send_chunk(&mut wr, &more[..more.len() / 2]).await;
            wr.as_ref().set_zero_linger().unwrap();
        }
        Drop::CloseMidChunk => {
            send_chunk(&mut wr, &next[..next.len() / 2]).await;
            wr.write_all(format!("{:x}\r\n", next.len()).as_bytes())
                .await
                .unwrap();
            wr.write_all(&next[..10]).await.unwrap();
        }
    }
    drop(wr);
    reader.abort();
    let _ = reader.await;

    let (status, body) = post(
        &s,
        "/putMedia",
        &[
            ("x-amzn-stream-name", "cam"),
            ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
        ],
        vec![header_and_cluster(5000, true)],
        true,
    )
    .await;
    assert_eq!(status, 200, "{how:?}: {}", String::from_utf8_lossy(&body));
    let acks = parse_acks(&body);
    assert_eq!(count(&acks, "PERSISTED"), 1, "{how:?}: {acks:?}");
    let kept: Vec<_> = s
        .state
        .catalog
        .latest_fragments(stream.id, 10)
        .await
        .unwrap()
        .iter()
        .map(|f| f.producer_timestamp.0)
        .collect();
    assert!(kept.contains(&1000), "{how:?}: cluster 1000 lost: {kept:?}");
    assert!(kept.contains(&5000), "{how:?}: {kept:?}");
}

#[tokio::test]
async fn a_producer_reconnecting_after_a_reset_gets_in_at_once() {
    reconnect_after(Drop::Reset).await;
}

#[tokio::test]
async fn a_producer_reconnecting_after_closing_mid_chunk_gets_in_at_once() {
    reconnect_after(Drop::CloseMidChunk).await;
}
