//! GetImages' decode bound (`Config::decode_limits`): with every decode slot taken, a request that
//! has frames to decode is refused with ClientLimitExceededException 400 (AWS's throttling error,
//! CONTRACT A3) once its wait is over; with the slot free again, the same request decodes.
//! Deterministic: one slot, held by the test itself, and no wait.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn a_request_finding_no_free_decode_slot_is_throttled() {
    let s = start_with_config(|c| {
        c.decode_limits = server::images::DecodeLimits {
            slots: 1,
            wait: Duration::ZERO,
        };
    })
    .await;
    ingest(&s, "imgs", &fixture("h264_aac.mkv")).await;
    // `ingest` starts the producer clock a minute ago: the fixture's 4 s are there.
    let start = now_s() - 60.0;
    let body = json!({
        "StreamName": "imgs",
        "ImageSelectorType": "PRODUCER_TIMESTAMP",
        "StartTimestamp": start,
        "EndTimestamp": start + 3.0,
        "SamplingInterval": 1000,
        "Format": "JPEG",
        "WidthPixels": 160,
    })
    .to_string()
    .into_bytes();
    let get_images = || post(&s, "/getImages", &[], vec![body.clone()], false);

    let held = s.state.decode_slots.acquire().await.expect("the one slot");
    let (status, refused) = get_images().await;
    let refused: Value = serde_json::from_slice(&refused).unwrap();
    assert_eq!(status, 400, "{refused}");
    assert_eq!(
        refused["__type"], "ClientLimitExceededException",
        "{refused}"
    );
    assert!(
        refused["Message"]
            .as_str()
            .is_some_and(|m| m.contains("retry later")),
        "{refused}"
    );

    drop(held);
    let (status, page) = get_images().await;
    let page: Value = serde_json::from_slice(&page).unwrap();
    assert_eq!(status, 200, "{page}");
    let images = page["Images"].as_array().expect("Images");
    assert_eq!(images.len(), 4, "{page}");
    assert!(
        images.iter().all(|i| i["ImageContent"].is_string()),
        "{page}"
    );
}
