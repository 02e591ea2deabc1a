//! SigV4 query form (presigned URLs: `X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`,
//! `X-Amz-SignedHeaders`, `X-Amz-Signature`, `X-Amz-Security-Token`).
//!
//! 1. Any query string (with any path and extra headers), verified in both modes at any time: no panic, and
//!    what passes with the known key passes with any key.
//! 2. Round trip: a URL made by `sigv4::presign` (any secret, session token, payload hash, expiry up to a
//!    week, signing time, path, and a query of its own) verifies until it expires, and `verify` reports the
//!    signer's key id, region, time and session token.
#![no_main]

use libfuzzer_sys::{arbitrary, fuzz_target};
use openkvs_fuzz::{verify_both, Signer};
use sigv4::Request;
use std::time::Duration;

#[derive(arbitrary::Arbitrary, Debug)]
struct Input {
    query: String,
    path: String,
    extra_headers: Vec<(String, String)>,
    payload_hash: String,
    now_s: u64,
    max_skew_s: u32,
    signer: Signer,
    own_query: String,
    expires_s: u32,
    delay_s: u32,
}

fuzz_target!(|input: Input| {
    // 1. Raw (an Authorization header would take precedence over the query).
    let mut headers: Vec<(&str, &str)> = vec![("host", "kinesisvideo.example")];
    headers.extend(
        input
            .extra_headers
            .iter()
            .filter(|(n, _)| !n.trim().eq_ignore_ascii_case("authorization"))
            .map(|(n, v)| (n.as_str(), v.as_str())),
    );
    let raw = Request {
        method: "GET",
        path: &input.path,
        query: &input.query,
        headers: &headers,
    };
    verify_both(&raw, &input.payload_hash, input.now_s, input.max_skew_s);

    // 2. Presigned, with a query of the caller's own that cannot spell an `X-Amz-*` key.
    let own_query: String = input
        .own_query
        .chars()
        .filter(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || "=&-._~".contains(c))
        .collect();
    let headers = [("host", "kinesisvideo.example")];
    let request = Request {
        query: &own_query,
        headers: &headers,
        ..raw
    };
    let (credentials, _, signed_at) = input.signer.parts();
    let expires_s = 1 + u64::from(input.expires_s) % sigv4::MAX_PRESIGN_EXPIRES.as_secs();
    let query = input.signer.with_params(|params| {
        sigv4::presign(
            &request,
            &input.payload_hash,
            params,
            Duration::from_secs(expires_s),
        )
    });
    let now = signed_at + Duration::from_secs(u64::from(input.delay_s) % (expires_s + 1));
    let sent = Request {
        query: &query,
        ..request
    };
    input.signer.assert_verifies(
        &sent,
        &input.payload_hash,
        now,
        credentials.session_token.as_deref(),
    );
});
