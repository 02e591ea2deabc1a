//! A segment file cut short on disk under a running server (something outside openkvs truncated
//! it after its fragments were served once, so its mapping is cached): the fragment in the lost
//! region is answered 500 `InternalFailure` in the AWS form and logged with its file and fragment
//! number; the fragments before it are still served, fMP4 and MPEG-TS alike, and the server goes
//! on. Its own test binary, so its log subscriber is the process's only one.

mod common;
use common::*;

/// The media fragment paths (track 1, or the muxed TS playlist) of a new ON_DEMAND session.
async fn fragment_paths(s: &TestServer, container: &str) -> Vec<String> {
    let (status, _, master) = get(s, &session_url(s, "trunc", container).await).await;
    assert_eq!(status, 200);
    let media = uris(&String::from_utf8(master).unwrap())[0].clone();
    let (status, _, playlist) = get(s, &format!("/hls/v1/{media}")).await;
    assert_eq!(status, 200);
    uris(&String::from_utf8(playlist).unwrap())
        .into_iter()
        .map(|u| format!("/hls/v1/{u}"))
        .collect()
}

#[tokio::test]
async fn a_fragment_in_a_truncated_segment_is_an_internal_failure_and_the_rest_is_served() {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish(),
    )
    .unwrap();

    let s = start().await;
    ingest(&s, "trunc", &fixture("h264_aac.mkv")).await;

    let fmp4 = fragment_paths(&s, "FRAGMENTED_MP4").await;
    let ts = fragment_paths(&s, "MPEG_TS").await;
    assert_eq!((fmp4.len(), ts.len()), (4, 4));
    // Served once: the segment is mapped and the mapping cached.
    for uri in [&fmp4[3], &ts[3]] {
        assert_eq!(get(&s, uri).await.0, 200, "{uri}");
    }

    // Cut the segment file inside the last fragment.
    let stream = s
        .state
        .catalog
        .stream_by_name("trunc")
        .await
        .unwrap()
        .unwrap();
    let mut fragments = s
        .state
        .catalog
        .latest_fragments(stream.id, 10)
        .await
        .unwrap();
    fragments.sort_by_key(|f| f.media.offset);
    let last = fragments.last().unwrap();
    let path = s
        ._dir
        .path()
        .join("media")
        .join(stream.id.0.to_string())
        .join(format!("{:016}.seg", last.media.segment));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(last.media.offset + 1)
        .unwrap();

    for uri in [&fmp4[3], &ts[3]] {
        let (status, head, body) = get(&s, uri).await;
        assert_eq!(status, 500, "{uri}: {}", String::from_utf8_lossy(&body));
        assert!(head.contains("x-amzn-errortype: internalfailure"), "{head}");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["__type"], "InternalFailure");
        assert!(
            !body.to_string().contains(".seg"),
            "no path to the client: {body}"
        );
    }
    for uri in fmp4[..3].iter().chain(&ts[..3]) {
        assert_eq!(get(&s, uri).await.0, 200, "{uri}");
    }
    assert_eq!(get(&s, "/healthz").await.0, 200);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let number = last.number.to_string();
    let line = log
        .lines()
        .find(|l| l.contains("internal error") && l.contains(&number))
        .unwrap_or_else(|| panic!("no error line naming fragment {number}:\n{log}"));
    assert!(
        line.contains(&path.display().to_string()),
        "the line names the file: {line}"
    );
}
