//! SigV4 header form (`Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`).
//!
//! 1. Any `Authorization` / `X-Amz-Date` / other headers, method, path and query, verified in both modes at any
//!    time: no panic, and what passes with the known key passes with any key.
//! 2. Round trip: a request signed by `sigv4::sign` (any secret, session token, payload hash, header values,
//!    method, path, query and signing time; well-formed key id, region and header names) verifies within the
//!    skew limit, and `verify` reports the signer's key id, region, time and session token.
#![no_main]

use libfuzzer_sys::{arbitrary, fuzz_target};
use openkvs_fuzz::{only, verify_both, Signer};
use sigv4::Request;
use std::time::Duration;

#[derive(arbitrary::Arbitrary, Debug)]
struct Input {
    authorization: String,
    amz_date: Option<String>,
    security_token: Option<String>,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    payload_hash: String,
    now_s: u64,
    max_skew_s: u32,
    signer: Signer,
    /// Seconds between signing and verifying (reduced below the default 15-minute skew).
    delay_s: u16,
}

/// Headers `sign` adds or replaces, and `host`, which the round trip sets itself.
const RESERVED: &[&str] = &[
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "host",
];

fuzz_target!(|input: Input| {
    // 1. Raw.
    let mut headers: Vec<(&str, &str)> = vec![
        ("host", "kinesisvideo.example"),
        ("Authorization", &input.authorization),
    ];
    headers.extend(input.amz_date.as_deref().map(|d| ("X-Amz-Date", d)));
    headers.extend(
        input
            .security_token
            .as_deref()
            .map(|t| ("X-Amz-Security-Token", t)),
    );
    headers.extend(input.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let raw = Request {
        method: &input.method,
        path: &input.path,
        query: &input.query,
        headers: &headers,
    };
    verify_both(&raw, &input.payload_hash, input.now_s, input.max_skew_s);

    // 2. Signed.
    let mut headers: Vec<(String, String)> = input
        .headers
        .iter()
        .map(|(n, v)| {
            (
                only(n, |c| c.is_ascii_alphanumeric() || c == '-', "x-fuzz"),
                v.clone(),
            )
        })
        .filter(|(name, _)| !RESERVED.contains(&name.to_ascii_lowercase().as_str()))
        .collect();
    headers.push(("host".to_owned(), "kinesisvideo.example".to_owned()));
    let to_sign: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let request = Request {
        headers: &to_sign,
        ..raw
    };
    let (credentials, _, signed_at) = input.signer.parts();
    let added = input
        .signer
        .with_params(|params| sigv4::sign(&request, &input.payload_hash, params));
    let sent: Vec<(&str, &str)> = to_sign
        .iter()
        .copied()
        .chain(added.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .collect();
    let now = signed_at + Duration::from_secs(u64::from(input.delay_s) % 900);
    // Header values reach the verifier canonicalised (trimmed, inner whitespace runs collapsed).
    let token = credentials
        .session_token
        .as_deref()
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "));
    let sent = Request {
        headers: &sent,
        ..request
    };
    input
        .signer
        .assert_verifies(&sent, &input.payload_hash, now, token.as_deref());
});
