//! Unit tests: AWS's published SigV4 test-suite vectors, sign→verify round trips, tampering, time limits.

use super::*;
use std::time::UNIX_EPOCH;

const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// 20150830T123600Z, the time of every test-suite vector.
const SUITE_TIME_SECS: u64 = 1_440_938_160;

fn suite_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(SUITE_TIME_SECS)
}

fn suite_credentials() -> Credentials {
    Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: SUITE_SECRET.into(),
        session_token: None,
    }
}

fn authorization_of(added: &[(String, String)]) -> &str {
    &added
        .iter()
        .find(|(name, _)| name == "authorization")
        .expect("authorization header")
        .1
}

fn suite_params(credentials: &Credentials) -> SigningParams<'_> {
    SigningParams {
        credentials,
        region: "us-east-1",
        service: "service",
        time: suite_time(),
    }
}

#[test]
fn suite_get_vanilla() {
    let credentials = suite_credentials();
    let request = Request {
        method: "GET",
        path: "/",
        query: "",
        headers: &[("Host", "example.amazonaws.com")],
    };
    let added = sign(&request, EMPTY_SHA256, &suite_params(&credentials));
    assert_eq!(
        added[0],
        ("x-amz-date".to_owned(), "20150830T123600Z".to_owned())
    );
    assert_eq!(
        authorization_of(&added),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
}

#[test]
fn suite_post_x_www_form_urlencoded() {
    let credentials = suite_credentials();
    let request = Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Host", "example.amazonaws.com"),
        ],
    };
    let added = sign(
        &request,
        &sha256_hex(b"Param1=value1"),
        &suite_params(&credentials),
    );
    assert_eq!(
        authorization_of(&added),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, \
         Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
    );
}

#[test]
fn suite_get_vanilla_query_order_key_case() {
    let credentials = suite_credentials();
    let request = Request {
        method: "GET",
        path: "/",
        query: "Param2=value2&Param1=value1",
        headers: &[("Host", "example.amazonaws.com")],
    };
    let added = sign(&request, EMPTY_SHA256, &suite_params(&credentials));
    assert!(authorization_of(&added)
        .ends_with("Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"));
}

#[test]
fn suite_vectors_verify() {
    let credentials = suite_credentials();
    let keys = vec![("AKIDEXAMPLE".to_owned(), SUITE_SECRET.to_owned())];
    let headers = [
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
    ];
    let request = Request {
        method: "GET",
        path: "/",
        query: "",
        headers: &headers,
    };
    let verified = verify_for_service(
        &request,
        EMPTY_SHA256,
        &keys,
        Mode::RequireKnownKey,
        suite_time(),
        DEFAULT_MAX_SKEW,
        "service",
    )
    .expect("suite vector verifies");
    assert_eq!(verified.access_key_id, credentials.access_key_id);
    assert_eq!(verified.region, "us-east-1");
    assert_eq!(verified.signed_at, suite_time());
}

#[test]
fn suite_signing_key() {
    // From the AWS docs' "derive a signing key" example (iam service, 20150830, us-east-1).
    let key = derive_signing_key(SUITE_SECRET, "20150830", "us-east-1", "iam");
    assert_eq!(
        hex::encode(key),
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    );
}

#[test]
fn canonical_uri_normalises_and_double_encodes() {
    assert_eq!(canonical_uri(""), "/");
    assert_eq!(canonical_uri("/"), "/");
    assert_eq!(canonical_uri("/putMedia"), "/putMedia");
    assert_eq!(canonical_uri("/example/.."), "/");
    assert_eq!(canonical_uri("/example1/example2/../.."), "/");
    assert_eq!(canonical_uri("/./"), "/");
    assert_eq!(canonical_uri("//example//"), "/example/");
    assert_eq!(canonical_uri("/a%20b"), "/a%2520b");
    assert_eq!(canonical_uri("/-._~"), "/-._~");
    assert_eq!(canonical_uri("/ሴ"), "/%E1%88%B4");
}

#[test]
fn canonical_query_sorts_and_reencodes() {
    assert_eq!(canonical_query("", &[]), "");
    assert_eq!(canonical_query("b=2&a=1&a=0", &[]), "a=0&a=1&b=2");
    assert_eq!(
        canonical_query("Param1=value1&param1=value2", &[]),
        "Param1=value1&param1=value2"
    );
    assert_eq!(canonical_query("k=a b", &[]), "k=a%20b");
    assert_eq!(canonical_query("k=a%2fb&flag", &[]), "flag=&k=a%2Fb");
    assert_eq!(
        canonical_query("X-Amz-Signature=abc&x=1", &["X-Amz-Signature"]),
        "x=1"
    );
}

// ---- round trips with the kinesisvideo service ----

const KEY_ID: &str = "AKIAOPENKVSTEST00001";
const SECRET: &str = "openkvs-test-secret/with+chars";
/// 2024-01-01T00:00:00Z
const NOW_SECS: u64 = 1_704_067_200;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

fn keys() -> Vec<(String, String)> {
    vec![(KEY_ID.to_owned(), SECRET.to_owned())]
}

fn credentials(session_token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: KEY_ID.into(),
        secret_access_key: SECRET.into(),
        session_token: session_token.map(str::to_owned),
    }
}

fn put_media_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Host", "127.0.0.1:4567"),
        ("x-amzn-stream-name", "my-stream"),
        ("x-amzn-fragment-timecode-type", "RELATIVE"),
        ("x-amzn-producer-start-timestamp", "1704067200.5"),
        ("x-amzn-fragment-acknowledgment-required", "1"),
        ("transfer-encoding", "chunked"),
        ("user-agent", "openkvs/0.1"),
    ]
}

/// Sign `headers` at `signed_at`, returning the full header list as sent.
fn signed(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&'static str, &'static str)],
    payload_hash: &str,
    signed_at: SystemTime,
    session_token: Option<&str>,
) -> Vec<(String, String)> {
    let credentials = credentials(session_token);
    let params = SigningParams {
        credentials: &credentials,
        region: "eu-west-1",
        service: SERVICE,
        time: signed_at,
    };
    let request = Request {
        method,
        path,
        query,
        headers,
    };
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    all.extend(sign(&request, payload_hash, &params));
    all
}

fn as_refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

fn check(
    path: &str,
    query: &str,
    headers: &[(String, String)],
    payload_hash: &str,
    at: SystemTime,
) -> Result<Verified, AuthError> {
    let refs = as_refs(headers);
    let request = Request {
        method: "POST",
        path,
        query,
        headers: &refs,
    };
    verify(
        &request,
        payload_hash,
        &keys(),
        Mode::RequireKnownKey,
        at,
        DEFAULT_MAX_SKEW,
    )
}

#[test]
fn round_trip_put_media_with_empty_body_hash() {
    let headers = signed(
        "POST",
        "/putMedia",
        "",
        &put_media_headers(),
        EMPTY_SHA256,
        now(),
        None,
    );
    let verified = check("/putMedia", "", &headers, EMPTY_SHA256, now()).expect("verifies");
    assert_eq!(verified.access_key_id, KEY_ID);
    assert_eq!(verified.region, "eu-west-1");
    assert_eq!(verified.session_token, None);
    // user-agent and transfer-encoding are not signed; the x-amzn-* headers are.
    let authorization = &headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .unwrap()
        .1;
    assert!(authorization.contains(
        "SignedHeaders=host;x-amz-date;x-amzn-fragment-acknowledgment-required;x-amzn-fragment-timecode-type;\
         x-amzn-producer-start-timestamp;x-amzn-stream-name,"
    ));
}

#[test]
fn round_trip_with_session_token_and_unsigned_payload() {
    let mut base = put_media_headers();
    base.push(("x-amz-content-sha256", UNSIGNED_PAYLOAD));
    let headers = signed(
        "POST",
        "/putMedia",
        "",
        &base,
        UNSIGNED_PAYLOAD,
        now(),
        Some("FwoGZXIvYXdzEJr//token"),
    );
    let verified = check("/putMedia", "", &headers, UNSIGNED_PAYLOAD, now()).expect("verifies");
    assert_eq!(
        verified.session_token.as_deref(),
        Some("FwoGZXIvYXdzEJr//token")
    );
    // A different token is a different signed header value.
    let mut other = headers.clone();
    for (name, value) in &mut other {
        if name == "x-amz-security-token" {
            *value = "other".into();
        }
    }
    assert!(matches!(
        check("/putMedia", "", &other, UNSIGNED_PAYLOAD, now()),
        Err(AuthError::SignatureMismatch { .. })
    ));
}

#[test]
fn json_control_plane_round_trip() {
    let body = br#"{"StreamName":"s1"}"#;
    let base = [
        ("Host", "localhost:4567"),
        ("Content-Type", "application/json"),
    ];
    let headers = signed(
        "POST",
        "/describeStream",
        "",
        &base,
        &sha256_hex(body),
        now(),
        None,
    );
    check("/describeStream", "", &headers, &sha256_hex(body), now()).expect("verifies");
    let tampered_body = br#"{"StreamName":"s2"}"#;
    let err = check(
        "/describeStream",
        "",
        &headers,
        &sha256_hex(tampered_body),
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, AuthError::SignatureMismatch { .. }));
}

#[test]
fn tampering_fails() {
    let headers = signed(
        "POST",
        "/putMedia",
        "a=1",
        &put_media_headers(),
        EMPTY_SHA256,
        now(),
        None,
    );
    check("/putMedia", "a=1", &headers, EMPTY_SHA256, now()).expect("untampered verifies");

    let mismatch = |result: Result<Verified, AuthError>| {
        matches!(result, Err(AuthError::SignatureMismatch { .. }))
    };
    // Signed header value.
    let mut changed = headers.clone();
    changed[1].1 = "other-stream".into();
    assert!(mismatch(check(
        "/putMedia",
        "a=1",
        &changed,
        EMPTY_SHA256,
        now()
    )));
    // Payload hash.
    assert!(mismatch(check(
        "/putMedia",
        "a=1",
        &headers,
        UNSIGNED_PAYLOAD,
        now()
    )));
    // Path.
    assert!(mismatch(check(
        "/getMedia",
        "a=1",
        &headers,
        EMPTY_SHA256,
        now()
    )));
    // Query.
    assert!(mismatch(check(
        "/putMedia",
        "a=2",
        &headers,
        EMPTY_SHA256,
        now()
    )));
    // Date (one second later, still within the skew).
    let mut redated = headers.clone();
    for (name, value) in &mut redated {
        if name == "x-amz-date" {
            *value = format_amz_date(now() + Duration::from_secs(1));
        }
    }
    assert!(mismatch(check(
        "/putMedia",
        "a=1",
        &redated,
        EMPTY_SHA256,
        now()
    )));
    // A signed header removed.
    let removed: Vec<_> = headers
        .iter()
        .filter(|(n, _)| n != "x-amzn-fragment-timecode-type")
        .cloned()
        .collect();
    assert!(mismatch(check(
        "/putMedia",
        "a=1",
        &removed,
        EMPTY_SHA256,
        now()
    )));
    // Unsigned headers may change freely.
    let mut agent = headers.clone();
    for (name, value) in &mut agent {
        if name == "user-agent" {
            *value = "curl".into();
        }
    }
    check("/putMedia", "a=1", &agent, EMPTY_SHA256, now()).expect("user-agent is not signed");
}

#[test]
fn header_values_are_trimmed_and_names_case_insensitive() {
    let headers = signed(
        "POST",
        "/putMedia",
        "",
        &put_media_headers(),
        EMPTY_SHA256,
        now(),
        None,
    );
    let mut received = headers.clone();
    for (name, value) in &mut received {
        *name = name.to_ascii_uppercase();
        if name == "X-AMZN-STREAM-NAME" {
            *value = "  my-stream  ".into();
        }
    }
    check("/putMedia", "", &received, EMPTY_SHA256, now()).expect("verifies");
}

#[test]
fn host_without_port_as_the_c_producer_sends_it() {
    // docs/wire.md#sigv4: the C SDK signs `Host: 127.0.0.1` and sends exactly that.
    let mut base = put_media_headers();
    base[0] = ("Host", "127.0.0.1");
    base.push(("connection", "keep-alive"));
    let headers = signed("POST", "/putMedia", "", &base, EMPTY_SHA256, now(), None);
    check("/putMedia", "", &headers, EMPTY_SHA256, now())
        .expect("verifies against Host as received");
    // The same signature presented with a port does not verify.
    let mut with_port = headers.clone();
    with_port[0].1 = "127.0.0.1:4567".into();
    assert!(matches!(
        check("/putMedia", "", &with_port, EMPTY_SHA256, now()),
        Err(AuthError::SignatureMismatch { .. })
    ));
}

#[test]
fn c_producer_style_signed_connection_and_transfer_encoding_verify() {
    // The C SDK lists connection and transfer-encoding in SignedHeaders; verify follows the client's list.
    let base = [
        ("host", "127.0.0.1"),
        ("connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
    ];
    let amz_date = format_amz_date(now());
    let names = vec![
        "connection".to_owned(),
        "host".to_owned(),
        "transfer-encoding".to_owned(),
        "x-amz-date".to_owned(),
    ];
    let mut all: Vec<(&str, &str)> = base.to_vec();
    all.push(("x-amz-date", &amz_date));
    let request = Request {
        method: "POST",
        path: "/putMedia",
        query: "",
        headers: &all,
    };
    let canonical = canonical_request(&request, &names, EMPTY_SHA256, &[]);
    let scope = format!("{}/us-west-2/kinesisvideo/aws4_request", &amz_date[..8]);
    let key = derive_signing_key(SECRET, &amz_date[..8], "us-west-2", SERVICE);
    let signature = signature_hex(&key, &string_to_sign(&amz_date, &scope, &canonical));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={KEY_ID}/{scope}, SignedHeaders={}, Signature={signature}",
        names.join(";")
    );
    all.push(("authorization", &authorization));
    let request = Request {
        method: "POST",
        path: "/putMedia",
        query: "",
        headers: &all,
    };
    verify(
        &request,
        EMPTY_SHA256,
        &keys(),
        Mode::RequireKnownKey,
        now(),
        DEFAULT_MAX_SKEW,
    )
    .expect("verifies");
}

#[test]
fn clock_skew_limits() {
    let limit = Duration::from_secs(5 * 60);
    let signed_at = now();
    let headers = signed(
        "POST",
        "/putMedia",
        "",
        &put_media_headers(),
        EMPTY_SHA256,
        signed_at,
        None,
    );
    let refs = as_refs(&headers);
    let request = Request {
        method: "POST",
        path: "/putMedia",
        query: "",
        headers: &refs,
    };
    let at = |offset_secs: i64| {
        let server_now = if offset_secs >= 0 {
            signed_at + Duration::from_secs(offset_secs as u64)
        } else {
            signed_at - Duration::from_secs(offset_secs.unsigned_abs())
        };
        verify(
            &request,
            EMPTY_SHA256,
            &keys(),
            Mode::RequireKnownKey,
            server_now,
            limit,
        )
    };
    at(300).expect("exactly at the limit");
    at(-300).expect("exactly at the limit, other side");
    match at(301) {
        Err(AuthError::Expired { message, .. }) => {
            assert_eq!(
                message,
                "Signature expired: 20240101T000000Z is now earlier than 20240101T000001Z (20240101T000501Z - 5 min.)"
            );
        }
        other => panic!("expected Expired, got {other:?}"),
    }
    match at(-301) {
        Err(AuthError::NotYetValid { message, .. }) => assert_eq!(
            message,
            "Signature not yet current: 20240101T000000Z is still later than 20231231T235959Z \
             (20231231T235459Z + 5 min.)"
        ),
        other => panic!("expected NotYetValid, got {other:?}"),
    }
}

fn presigned_query(expires: Duration, session_token: Option<&str>) -> String {
    let credentials = credentials(session_token);
    let params = SigningParams {
        credentials: &credentials,
        region: "us-east-1",
        service: SERVICE,
        time: now(),
    };
    let request = Request {
        method: "POST",
        path: "/putMedia",
        query: "",
        headers: &[("host", "kvs.example:443")],
    };
    presign(&request, EMPTY_SHA256, &params, expires)
}

fn check_presigned(query: &str, at: SystemTime) -> Result<Verified, AuthError> {
    let request = Request {
        method: "POST",
        path: "/putMedia",
        query,
        headers: &[("host", "kvs.example:443")],
    };
    verify(
        &request,
        EMPTY_SHA256,
        &keys(),
        Mode::RequireKnownKey,
        at,
        DEFAULT_MAX_SKEW,
    )
}

#[test]
fn presigned_round_trip_and_expiry() {
    let query = presigned_query(Duration::from_secs(300), Some("tok/en+="));
    assert!(query.starts_with(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAOPENKVSTEST00001%2F20240101%2F"
    ));
    assert!(query.contains("&X-Amz-Security-Token=tok%2Fen%2B%3D&X-Amz-Signature="));
    let verified =
        check_presigned(&query, now() + Duration::from_secs(300)).expect("within expiry");
    assert_eq!(verified.session_token.as_deref(), Some("tok/en+="));
    let expired = check_presigned(&query, now() + Duration::from_secs(301)).unwrap_err();
    assert!(matches!(expired, AuthError::Expired { .. }), "{expired:?}");
    // Clock skew still applies to dates in the future.
    assert!(matches!(
        check_presigned(&query, now() - Duration::from_secs(16 * 60)),
        Err(AuthError::NotYetValid { .. })
    ));
    // Tampered expiry.
    let longer = query.replace("X-Amz-Expires=300", "X-Amz-Expires=3000");
    assert!(matches!(
        check_presigned(&longer, now()),
        Err(AuthError::SignatureMismatch { .. })
    ));
    // Over a week.
    let too_long = query.replace("X-Amz-Expires=300", "X-Amz-Expires=604801");
    assert!(matches!(
        check_presigned(&too_long, now()),
        Err(AuthError::Malformed(_))
    ));
}

#[test]
fn presigned_with_operation_params_in_any_order() {
    let credentials = credentials(None);
    let params = SigningParams {
        credentials: &credentials,
        region: "us-east-1",
        service: SERVICE,
        time: now(),
    };
    let request = Request {
        method: "GET",
        path: "/x",
        query: "z=1&a=%7E",
        headers: &[("host", "h")],
    };
    let query = presign(&request, EMPTY_SHA256, &params, Duration::from_secs(60));
    // Move the signature to the front: order of parameters does not matter.
    let (rest, signature) = query.rsplit_once('&').unwrap();
    let reordered = format!("{signature}&{rest}");
    let request = Request {
        query: &reordered,
        ..request
    };
    verify(
        &request,
        EMPTY_SHA256,
        &keys(),
        Mode::RequireKnownKey,
        now(),
        DEFAULT_MAX_SKEW,
    )
    .expect("verifies");
}

#[test]
fn errors_for_missing_and_incomplete_authorization() {
    let plain = [("host", "h")];
    let request = Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &plain,
    };
    let err = verify(
        &request,
        EMPTY_SHA256,
        &keys(),
        Mode::RequireKnownKey,
        now(),
        DEFAULT_MAX_SKEW,
    )
    .unwrap_err();
    assert!(matches!(err, AuthError::MissingAuthentication));

    let garbage = [("host", "h"), ("authorization", "Bearer abc")];
    let request = Request {
        headers: &garbage,
        ..request
    };
    let err = verify(
        &request,
        EMPTY_SHA256,
        &keys(),
        Mode::AcceptAnyWellFormed,
        now(),
        DEFAULT_MAX_SKEW,
    )
    .unwrap_err();
    assert!(matches!(err, AuthError::IncompleteSignature(_)), "{err:?}");

    let partial = [
        ("host", "h"),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/r/kinesisvideo/aws4_request",
        ),
    ];
    let request = Request {
        headers: &partial,
        ..request
    };
    let err = verify(
        &request,
        EMPTY_SHA256,
        &keys(),
        Mode::AcceptAnyWellFormed,
        now(),
        DEFAULT_MAX_SKEW,
    )
    .unwrap_err();
    let AuthError::IncompleteSignature(message) = err else {
        panic!("expected IncompleteSignature, got {err:?}");
    };
    assert!(message.starts_with(
        "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' \
         parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    ));
}

#[test]
fn scope_checks() {
    let with_scope = |credential_scope: &str, amz_date: &str| {
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={KEY_ID}/{credential_scope}, SignedHeaders=host;x-amz-date, Signature=00"
        );
        let headers = vec![
            ("host".to_owned(), "h".to_owned()),
            ("x-amz-date".to_owned(), amz_date.to_owned()),
            ("authorization".to_owned(), authorization),
        ];
        let refs = as_refs(&headers);
        let request = Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &refs,
        };
        verify(
            &request,
            EMPTY_SHA256,
            &keys(),
            Mode::AcceptAnyWellFormed,
            now(),
            DEFAULT_MAX_SKEW,
        )
    };
    with_scope(
        "20240101/any-region-1/kinesisvideo/aws4_request",
        "20240101T000000Z",
    )
    .expect("well formed");
    let err = with_scope("20240101/us-east-1/s3/aws4_request", "20240101T000000Z").unwrap_err();
    assert!(
        matches!(&err, AuthError::InvalidScope(m) if m == "Credential should be scoped to correct service: 'kinesisvideo'. "),
        "{err:?}"
    );
    let err = with_scope(
        "20231231/us-east-1/kinesisvideo/aws4_request",
        "20240101T000000Z",
    )
    .unwrap_err();
    assert!(matches!(err, AuthError::InvalidScope(_)), "{err:?}");
    let err = with_scope(
        "20240101/us-east-1/kinesisvideo/aws4_request",
        "2024-01-01T00:00:00Z",
    )
    .unwrap_err();
    assert!(matches!(err, AuthError::Malformed(_)), "{err:?}");
    let err = with_scope("20240101/us-east-1/kinesisvideo", "20240101T000000Z").unwrap_err();
    assert!(matches!(err, AuthError::IncompleteSignature(_)), "{err:?}");
}

#[test]
fn host_must_be_signed() {
    let amz_date = format_amz_date(now());
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={KEY_ID}/20240101/r/kinesisvideo/aws4_request, SignedHeaders=x-amz-date, Signature=00"
    );
    let headers = [
        ("host", "h"),
        ("x-amz-date", amz_date.as_str()),
        ("authorization", authorization.as_str()),
    ];
    let request = Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
    };
    let err = verify(
        &request,
        EMPTY_SHA256,
        &keys(),
        Mode::AcceptAnyWellFormed,
        now(),
        DEFAULT_MAX_SKEW,
    )
    .unwrap_err();
    assert!(matches!(err, AuthError::IncompleteSignature(_)), "{err:?}");
}

#[test]
fn unknown_key_and_accept_any_mode() {
    let other = Credentials {
        access_key_id: "AKIAUNKNOWN".into(),
        secret_access_key: "x".into(),
        session_token: None,
    };
    let params = SigningParams {
        credentials: &other,
        region: "us-east-1",
        service: SERVICE,
        time: now(),
    };
    let base = [("host", "h")];
    let request = Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &base,
    };
    let mut headers: Vec<(String, String)> = vec![("host".into(), "h".into())];
    headers.extend(sign(&request, EMPTY_SHA256, &params));
    let refs = as_refs(&headers);
    let request = Request {
        headers: &refs,
        ..request
    };
    let err = verify(
        &request,
        EMPTY_SHA256,
        &keys(),
        Mode::RequireKnownKey,
        now(),
        DEFAULT_MAX_SKEW,
    )
    .unwrap_err();
    assert!(matches!(err, AuthError::UnknownAccessKey(_)), "{err:?}");
    let verified = verify(
        &request,
        EMPTY_SHA256,
        &(),
        Mode::AcceptAnyWellFormed,
        now(),
        DEFAULT_MAX_SKEW,
    )
    .unwrap();
    assert_eq!(verified.access_key_id, "AKIAUNKNOWN");
    // Accept-any still enforces the clock.
    let later = now() + Duration::from_secs(3600);
    assert!(verify(
        &request,
        EMPTY_SHA256,
        &(),
        Mode::AcceptAnyWellFormed,
        later,
        DEFAULT_MAX_SKEW
    )
    .is_err());
}

#[test]
fn upper_case_hex_signature_is_accepted() {
    let mut headers = signed(
        "POST",
        "/putMedia",
        "",
        &put_media_headers(),
        EMPTY_SHA256,
        now(),
        None,
    );
    for (name, value) in &mut headers {
        if name == "authorization" {
            let (head, signature) = value.rsplit_once("Signature=").unwrap();
            *value = format!("{head}Signature={}", signature.to_ascii_uppercase());
        }
    }
    check("/putMedia", "", &headers, EMPTY_SHA256, now()).expect("verifies");
}

#[test]
fn credentials_debug_redacts_secrets() {
    let text = format!("{:?}", credentials(Some("session")));
    assert!(
        !text.contains(SECRET) && !text.contains("session\""),
        "{text}"
    );
}
