//! HLS endpoints over a socket: a fixture goes in through PutMedia, an ON_DEMAND session comes out,
//! and every media fragment's `mdat` holds exactly the bytes that were ingested.

mod common;

use common::*;
use serde_json::json;

/// Finds a top-level box; returns (offset, size).
fn find_box(data: &[u8], fourcc: &[u8; 4]) -> Option<(usize, usize)> {
    let mut pos = 0;
    while pos + 8 <= data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let (size, header) = if size == 1 {
            (
                u64::from_be_bytes(data[pos + 8..pos + 16].try_into().unwrap()) as usize,
                16,
            )
        } else {
            (size, 8)
        };
        if &data[pos + 4..pos + 8] == fourcc {
            return Some((pos + header, size - header));
        }
        if size == 0 {
            return None;
        }
        pos += size;
    }
    None
}

/// An immutable resource carries a strong ETag; `If-None-Match` with it gets `304 Not Modified` and
/// no body (with its ETag and Cache-Control), another tag the whole resource again.
/// Returns the body bytes of that second (200) response.
async fn revalidates(s: &TestServer, path: &str, head: &str) -> usize {
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap_or_else(|| panic!("no ETag on {path}: {head}"))
        .trim()
        .to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "{etag}"
    );
    let request = |tag: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nhost: {}\r\nif-none-match: {tag}\r\nconnection: close\r\n\r\n",
            s.addr
        )
    };
    let send = |raw_request: String| async move {
        let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stream, raw_request.as_bytes())
            .await
            .unwrap();
        let mut raw = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut raw)
            .await
            .unwrap();
        String::from_utf8_lossy(&raw).to_ascii_lowercase()
    };
    let raw = send(request(&format!("\"other\", {etag}"))).await;
    assert!(raw.starts_with("http/1.1 304"), "{raw}");
    assert!(raw.contains(&format!("etag: {etag}\r\n")), "{raw}");
    assert!(raw.contains("cache-control: private, max-age="), "{raw}");
    assert!(raw.ends_with("\r\n\r\n"), "no body: {raw}");
    let raw = send(request("\"other\"")).await;
    assert!(raw.starts_with("http/1.1 200"), "{raw}");
    assert!(raw.contains(&format!("etag: {etag}\r\n")), "{raw}");
    // (The text is lossy past the head: the length comes from the head.)
    raw.lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("content-length")
}

#[tokio::test]
async fn on_demand_session_serves_playlists_and_byte_exact_fragments() {
    let s = start().await;
    create_stream(&s, "hls").await;
    let mkv = fixture("h264_aac.mkv");
    let start_ts = format!("{:.3}", now_s() - 60.0);
    let headers = [
        ("x-amzn-stream-name", "hls"),
        ("x-amzn-fragment-timecode-type", "RELATIVE"),
        ("x-amzn-producer-start-timestamp", start_ts.as_str()),
    ];
    let (status, body) = post(&s, "/putMedia", &headers, vec![mkv.clone()], true).await;
    assert_eq!(status, 200);
    assert_eq!(count(&parse_acks(&body), "PERSISTED"), 4);

    let request = json!({
        "StreamName": "hls",
        "PlaybackMode": "ON_DEMAND",
        "HLSFragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": now_s() - 600.0, "EndTimestamp": now_s() - 0.001}},
        "DisplayFragmentTimestamp": "ALWAYS",
    });
    let (status, body) = post(
        &s,
        "/getHLSStreamingSessionURL",
        &[],
        vec![request.to_string().into_bytes()],
        false,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let url = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["HLSStreamingSessionURL"]
        .as_str()
        .unwrap()
        .to_owned();
    let master_path = path_of(&url);
    assert!(master_path.starts_with("/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken="));

    let (status, head, master) = get(&s, &master_path).await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/vnd.apple.mpegurl"));
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    let master = String::from_utf8(master).unwrap();
    assert!(master.contains("CODECS=\"avc1.64"), "{master}");
    assert!(master.contains(",mp4a.40.2\""), "{master}");
    assert!(master.contains("RESOLUTION=320x240"), "{master}");
    assert!(master.contains("FRAME-RATE=30"), "{master}");
    assert!(master.contains("TYPE=AUDIO"), "{master}");

    let expected = frames_by_cluster(&mkv);
    let mut fragment_bytes = 0;
    for track in [1u64, 2] {
        let media_uri = uris(&master)
            .into_iter()
            .chain(master.lines().filter_map(|l| {
                l.split("URI=\"")
                    .nth(1)?
                    .split('"')
                    .next()
                    .map(str::to_owned)
            }))
            .find(|u| u.ends_with(&format!("TrackNumber={track}")))
            .unwrap();
        let (status, _, playlist) = get(&s, &format!("/hls/v1/{media_uri}")).await;
        assert_eq!(status, 200);
        let playlist = String::from_utf8(playlist).unwrap();
        assert!(
            playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD") && playlist.ends_with("#EXT-X-ENDLIST\n"),
            "{playlist}"
        );
        assert_eq!(playlist.matches("#EXT-X-PROGRAM-DATE-TIME:").count(), 4);
        let total: f64 = playlist
            .lines()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
            .map(|v| v.trim_end_matches(',').parse::<f64>().unwrap())
            .sum();
        assert!(
            (total - 4.0).abs() < 0.1,
            "EXTINF sum {total} for track {track}\n{playlist}"
        );

        let init_uri = playlist
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
            .unwrap()
            .trim_end_matches('"');
        assert!(init_uri.ends_with("&SequenceNumber=0"), "{init_uri}");
        let (status, head, init) = get(&s, &format!("/hls/v1/{init_uri}")).await;
        assert_eq!(status, 200);
        assert!(head.contains("content-type: video/mp4"));
        assert_eq!(&init[4..8], b"ftyp");
        assert!(find_box(&init, b"moov").is_some());
        revalidates(&s, &format!("/hls/v1/{init_uri}"), &head).await;

        let segments = uris(&playlist);
        assert_eq!(segments.len(), 4);
        for (i, uri) in segments.iter().enumerate() {
            let (status, head, fragment) = get(&s, &format!("/hls/v1/{uri}")).await;
            fragment_bytes += fragment.len();
            assert_eq!(status, 200, "{uri}");
            assert!(head.contains(&format!("content-length: {}", fragment.len())));
            assert!(find_box(&fragment, b"moof").is_some());
            if i == 1 {
                fragment_bytes += revalidates(&s, &format!("/hls/v1/{uri}"), &head).await;
            }
            if i == 0 {
                // The session timeline starts at zero (not at epoch time, which players that pace
                // by timestamps would wait for): tfdt (version 1, 64-bit) of the first fragment.
                let at = fragment.windows(4).position(|w| w == b"tfdt").unwrap() + 8;
                let tfdt = u64::from_be_bytes(fragment[at..at + 8].try_into().unwrap());
                assert!(tfdt < 48_000, "first tfdt {tfdt} of track {track}");
            }
            let (offset, size) = find_box(&fragment, b"mdat").unwrap();
            assert_eq!(
                &fragment[offset..offset + size],
                &expected[i][&track].concat()[..],
                "track {track} fragment {i}: mdat = ingested bytes"
            );
        }
    }

    // A tampered token serves nothing.
    let mut tampered = master_path.clone();
    let flip = tampered.len() - 5;
    let c = if &tampered[flip..flip + 1] == "A" {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(flip..flip + 1, c);
    let (status, _, _) = get(&s, &tampered).await;
    assert_eq!(status, 403);

    let (status, _, metrics) = get(&s, "/metrics").await;
    assert_eq!(status, 200);
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("openkvs_http_requests_total{resource=\"/hls/v1/getMP4MediaFragment.mp4\",status=\"200\"} 10"),
        "{metrics}"
    );
    assert!(
        metrics.contains("openkvs_fragments_ingested_total 4"),
        "{metrics}"
    );
    // The stream's own series: its 4 fragments, each with a PERSISTED latency; one session (one
    // viewer) that was served the master playlist and, per track, a media playlist, its init
    // segment (twice more to revalidate), 4 fragments and one revalidated twice; not the tampered
    // request.
    for line in [
        "openkvs_stream_fragments_ingested_total{stream=\"hls\"} 4\n",
        "openkvs_stream_persisted_latency_seconds_count{stream=\"hls\"} 4\n",
        "openkvs_stream_persisted_latency_seconds_bucket{stream=\"hls\",le=\"+Inf\"} 4\n",
        "openkvs_stream_viewers{stream=\"hls\"} 1\n",
        "openkvs_stream_media_requests_total{stream=\"hls\"} 21\n",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
    // Media fragments are streamed bodies (no exact size hint): what was sent is counted.
    assert!(fragment_bytes > 10 * 1000);
    assert!(
        metrics.contains(&format!(
            "openkvs_http_response_bytes_total{{resource=\"/hls/v1/getMP4MediaFragment.mp4\"}} {fragment_bytes}\n"
        )),
        "{fragment_bytes} bytes of fragments sent: {metrics}"
    );
}
