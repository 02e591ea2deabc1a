//! The HTTP surface end to end in process: the real router over the embedded store in a temp dir,
//! requests signed with the `sigv4` signer and sent with `tower::ServiceExt::oneshot`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::body::Body;
use axum::Router;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const ACCESS_KEY: &str = "AKIDTEST";
const SECRET_KEY: &str = "secret/test/key";

struct TestServer {
    router: Router,
    state: server::AppState,
    _dir: tempfile::TempDir,
}

async fn start(credentials: bool) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        server::Config::new("127.0.0.1:4567".parse().unwrap(), dir.path().to_path_buf());
    if credentials {
        config.credentials =
            server::Credentials(BTreeMap::from([(ACCESS_KEY.into(), SECRET_KEY.into())]));
    }
    let state = server::build(config).await.unwrap();
    TestServer {
        router: server::ops::router(state.clone()),
        state,
        _dir: dir,
    }
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    json: Value,
}

impl TestServer {
    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
        }
    }

    /// A botocore-like signed POST.
    async fn call_with(
        &self,
        path: &str,
        body: &str,
        key: (&str, &str),
        time: SystemTime,
    ) -> Reply {
        let host = "127.0.0.1:4567";
        let headers = [("host", host), ("content-type", "application/json")];
        let creds = sigv4::Credentials {
            access_key_id: key.0.into(),
            secret_access_key: key.1.into(),
            session_token: None,
        };
        let params = sigv4::SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service: "kinesisvideo",
            time,
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
        self.send(request.body(Body::from(body.to_owned())).unwrap())
            .await
    }

    async fn call(&self, path: &str, body: Value) -> Reply {
        self.call_with(
            path,
            &body.to_string(),
            (ACCESS_KEY, SECRET_KEY),
            SystemTime::now(),
        )
        .await
    }

    async fn ok(&self, path: &str, body: Value) -> Value {
        let reply = self.call(path, body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.json);
        assert!(reply.headers.contains_key("x-amzn-requestid"));
        reply.json
    }

    async fn err(&self, path: &str, body: Value, status: u16, error_type: &str) -> String {
        let reply = self.call(path, body).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.json);
        assert_eq!(
            reply.headers["x-amzn-errortype"], error_type,
            "{path}: {}",
            reply.json
        );
        assert_eq!(reply.json["__type"], error_type);
        reply.json["Message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

#[tokio::test]
async fn stream_lifecycle() {
    let s = start(true).await;
    let arn = s.ok("/createStream", json!({"StreamName": "cam1", "DataRetentionInHours": 24, "MediaType": "video/h264", "Tags": {"a": "b"}}))
        .await["StreamARN"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        arn.starts_with("arn:aws:kinesisvideo:us-east-1:000000000000:stream/cam1/"),
        "{arn}"
    );

    let m = s
        .err(
            "/createStream",
            json!({"StreamName": "cam1"}),
            400,
            "ResourceInUseException",
        )
        .await;
    assert_eq!(m, "The stream cam1 already exists.");

    let info = s.ok("/describeStream", json!({"StreamARN": arn})).await["StreamInfo"].clone();
    assert_eq!(info["StreamName"], "cam1");
    assert_eq!(info["Status"], "ACTIVE");
    assert_eq!(info["MediaType"], "video/h264");
    assert_eq!(info["DataRetentionInHours"], 24);
    assert!(info["CreationTime"].is_number());
    let version = info["Version"].as_str().unwrap().to_owned();

    // Tags do not change the version.
    s.ok(
        "/tagStream",
        json!({"StreamName": "cam1", "Tags": {"c": "d"}}),
    )
    .await;
    s.ok(
        "/TagResource",
        json!({"ResourceARN": arn, "Tags": [{"Key": "e", "Value": "f"}]}),
    )
    .await;
    s.ok(
        "/UntagResource",
        json!({"ResourceARN": arn, "TagKeyList": ["a"]}),
    )
    .await;
    let tags = s
        .ok("/listTagsForStream", json!({"StreamName": "cam1"}))
        .await;
    assert_eq!(tags, json!({"Tags": {"c": "d", "e": "f"}}));
    let tags = s
        .ok("/ListTagsForResource", json!({"ResourceARN": arn}))
        .await;
    assert_eq!(tags, json!({"Tags": {"c": "d", "e": "f"}}));

    s.ok(
        "/updateStream",
        json!({"StreamName": "cam1", "CurrentVersion": version, "DeviceName": "dev1"}),
    )
    .await;
    s.err(
        "/updateStream",
        json!({"StreamName": "cam1", "CurrentVersion": version}),
        400,
        "VersionMismatchException",
    )
    .await;
    let info = s.ok("/describeStream", json!({"StreamName": "cam1"})).await["StreamInfo"].clone();
    assert_eq!(info["DeviceName"], "dev1");
    let version = info["Version"].as_str().unwrap().to_owned();

    s.err(
        "/updateDataRetention",
        json!({"StreamName": "cam1", "CurrentVersion": version, "Operation": "DECREASE_DATA_RETENTION", "DataRetentionChangeInHours": 25}),
        400,
        "InvalidArgumentException",
    )
    .await;
    s.ok(
        "/updateDataRetention",
        json!({"StreamName": "cam1", "CurrentVersion": version, "Operation": "INCREASE_DATA_RETENTION", "DataRetentionChangeInHours": 6}),
    )
    .await;
    let info = s.ok("/describeStream", json!({"StreamName": "cam1"})).await["StreamInfo"].clone();
    assert_eq!(info["DataRetentionInHours"], 30);

    let endpoint = s
        .ok(
            "/getDataEndpoint",
            json!({"StreamName": "cam1", "APIName": "PUT_MEDIA"}),
        )
        .await;
    assert_eq!(endpoint, json!({"DataEndpoint": "http://127.0.0.1:4567"}));

    s.ok("/deleteStream", json!({"StreamARN": arn})).await;
    let m = s
        .err(
            "/describeStream",
            json!({"StreamName": "cam1"}),
            404,
            "ResourceNotFoundException",
        )
        .await;
    assert_eq!(m, "The requested stream is not found or not active.");
    s.err(
        "/deleteStream",
        json!({"StreamARN": arn}),
        404,
        "ResourceNotFoundException",
    )
    .await;
}

#[tokio::test]
async fn list_streams_pages_and_filters() {
    let s = start(false).await;
    for name in ["b1", "a1", "a2", "a3"] {
        s.ok("/createStream", json!({"StreamName": name})).await;
    }
    let page = s.ok("/listStreams", json!({"MaxResults": 2, "StreamNameCondition": {"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": "a"}})).await;
    let names: Vec<&str> = page["StreamInfoList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["StreamName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a1", "a2"]);
    let token = page["NextToken"].as_str().unwrap();
    let page = s.ok("/listStreams", json!({"MaxResults": 2, "NextToken": token, "StreamNameCondition": {"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": "a"}})).await;
    assert_eq!(page["StreamInfoList"].as_array().unwrap().len(), 1);
    assert!(page.get("NextToken").is_none());
    let all = s.ok("/listStreams", json!({})).await;
    assert_eq!(all["StreamInfoList"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn validation_and_wire_errors() {
    let s = start(false).await;
    let m = s
        .err(
            "/createStream",
            json!({"StreamName": "bad name!"}),
            400,
            "InvalidArgumentException",
        )
        .await;
    assert_eq!(
        m,
        "1 validation error detected: Value 'bad name!' at 'streamName' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
    );
    s.err("/createStream", json!({}), 400, "InvalidArgumentException")
        .await;
    s.err(
        "/createStream",
        json!({"StreamName": "x", "DataRetentionInHours": 87601}),
        400,
        "InvalidArgumentException",
    )
    .await;
    s.err(
        "/createStream",
        json!({"StreamName": 5}),
        400,
        "SerializationException",
    )
    .await;
    let reply = s
        .call_with(
            "/createStream",
            "{not json",
            (ACCESS_KEY, SECRET_KEY),
            SystemTime::now(),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.headers["x-amzn-errortype"], "SerializationException");
    s.err(
        "/describeStream",
        json!({}),
        400,
        "InvalidArgumentException",
    )
    .await;
    s.err(
        "/getDataEndpoint",
        json!({"StreamName": "x", "APIName": "NOPE"}),
        400,
        "InvalidArgumentException",
    )
    .await;
    s.err(
        "/getDataEndpoint",
        json!({"StreamName": "nope", "APIName": "GET_MEDIA"}),
        404,
        "ResourceNotFoundException",
    )
    .await;
    s.err("/getClip", json!({}), 400, "InvalidArgumentException")
        .await;
    s.err(
        "/NoSuchOperation",
        json!({}),
        404,
        "UnknownOperationException",
    )
    .await;
    // Unknown members are ignored.
    s.ok(
        "/createStream",
        json!({"StreamName": "ok1", "SomethingNew": [1, 2]}),
    )
    .await;
    // Too many tags on the stream.
    let many: BTreeMap<String, String> = (0..30).map(|i| (format!("k{i}"), "v".into())).collect();
    s.ok("/tagStream", json!({"StreamName": "ok1", "Tags": many}))
        .await;
    let more: BTreeMap<String, String> = (30..51).map(|i| (format!("k{i}"), "v".into())).collect();
    s.err(
        "/tagStream",
        json!({"StreamName": "ok1", "Tags": more}),
        400,
        "TagsPerResourceExceededLimitException",
    )
    .await;
}

#[tokio::test]
async fn authentication() {
    let s = start(true).await;
    // Unsigned.
    let reply = s
        .send(
            Request::post("/describeStream")
                .header("host", "h")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.headers["x-amzn-errortype"],
        "MissingAuthenticationTokenException"
    );
    assert_eq!(reply.json["message"], "Missing Authentication Token");
    // Unknown key.
    let reply = s
        .call_with(
            "/listStreams",
            "{}",
            ("OTHER", SECRET_KEY),
            SystemTime::now(),
        )
        .await;
    assert_eq!(
        reply.headers["x-amzn-errortype"],
        "UnrecognizedClientException"
    );
    // Wrong secret.
    let reply = s
        .call_with(
            "/listStreams",
            "{}",
            (ACCESS_KEY, "wrong"),
            SystemTime::now(),
        )
        .await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.headers["x-amzn-errortype"],
        "InvalidSignatureException"
    );
    // Too old.
    let old = SystemTime::now() - std::time::Duration::from_secs(20 * 60);
    let reply = s
        .call_with("/listStreams", "{}", (ACCESS_KEY, SECRET_KEY), old)
        .await;
    assert_eq!(
        reply.headers["x-amzn-errortype"],
        "InvalidSignatureException"
    );
    assert!(
        reply.json["message"]
            .as_str()
            .unwrap()
            .starts_with("Signature expired"),
        "{}",
        reply.json
    );
    // Health and CORS preflight need no signature.
    let reply = s
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(reply.status, 200);
    let reply = s
        .send(
            Request::options("/listFragments")
                .header("origin", "http://page.example")
                .header("access-control-request-method", "POST")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(reply.status.is_success());
    assert_eq!(reply.headers["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn any_well_formed_signature_without_credentials() {
    let s = start(false).await;
    let reply = s
        .call_with(
            "/listStreams",
            "{}",
            ("ANYKEY", "anything"),
            SystemTime::now(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
}

async fn add_fragment(
    state: &server::AppState,
    stream: store::StreamId,
    producer_ms: i64,
    server_ms: i64,
) -> String {
    let row = store::NewFragment {
        writer_epoch: None,
        begins_discontinuity: false,
        stream,
        number: store::FragmentNumber::candidate(store::Timestamp(server_ms)),
        producer_timestamp: store::Timestamp(producer_ms),
        server_timestamp: store::Timestamp(server_ms),
        duration_ms: 2000,
        cluster_timecode_ms: producer_ms,
        tracks: vec![],
        tags: vec![],
        media: store::MediaLocation {
            segment: 0,
            offset: 0,
            len: 0,
        },
    };
    let number = state
        .archive
        .persist(store::PendingFragment {
            parts: vec![bytes::Bytes::from_static(b"0123456789")],
            row,
        })
        .await
        .unwrap();
    number.to_string()
}

#[tokio::test]
async fn list_fragments_pages_through_a_range() {
    let s = start(false).await;
    s.ok(
        "/createStream",
        json!({"StreamName": "cam", "DataRetentionInHours": 1}),
    )
    .await;
    let stream = s
        .state
        .catalog
        .stream_by_name("cam")
        .await
        .unwrap()
        .unwrap();
    let base = 1_704_067_200_000i64;
    let mut numbers = Vec::new();
    for i in 0..5 {
        numbers
            .push(add_fragment(&s.state, stream.id, base + i * 2000, base + 500 + i * 2000).await);
    }
    // Inclusive on both ends, on start timestamps: 2 s .. 6 s selects fragments 1, 2, 3.
    let selector = json!({"FragmentSelectorType": "PRODUCER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": (base + 2000) as f64 / 1000.0, "EndTimestamp": (base + 6000) / 1000}});
    let page = s
        .ok(
            "/listFragments",
            json!({"StreamName": "cam", "FragmentSelector": selector, "MaxResults": 2}),
        )
        .await;
    let frags = page["Fragments"].as_array().unwrap();
    assert_eq!(frags.len(), 2);
    assert_eq!(frags[0]["FragmentNumber"], numbers[1]);
    assert_eq!(frags[0]["ProducerTimestamp"], json!(1704067202));
    assert_eq!(frags[0]["ServerTimestamp"], json!(1704067202.5));
    assert_eq!(frags[0]["FragmentLengthInMilliseconds"], 2000);
    assert_eq!(frags[0]["FragmentSizeInBytes"], 10);
    let token = page["NextToken"].as_str().unwrap();
    // The token works without the selector.
    let page = s
        .ok(
            "/listFragments",
            json!({"StreamName": "cam", "NextToken": token}),
        )
        .await;
    let frags = page["Fragments"].as_array().unwrap();
    assert_eq!(frags.len(), 1);
    assert_eq!(frags[0]["FragmentNumber"], numbers[3]);
    assert!(page.get("NextToken").is_none());

    s.err(
        "/listFragments",
        json!({"StreamName": "cam"}),
        400,
        "InvalidArgumentException",
    )
    .await;
    s.err(
        "/listFragments",
        json!({"StreamName": "cam", "NextToken": "%%"}),
        400,
        "InvalidArgumentException",
    )
    .await;
    s.err(
        "/listFragments",
        json!({"StreamName": "cam", "MaxResults": 1001, "FragmentSelector": selector}),
        400,
        "InvalidArgumentException",
    )
    .await;
    s.err(
        "/listFragments",
        json!({"StreamName": "nope", "FragmentSelector": selector}),
        404,
        "ResourceNotFoundException",
    )
    .await;
}

#[tokio::test]
async fn body_limit_hash_check_and_presigned_form() {
    let s = start(true).await;
    // Over the 1 MiB JSON limit.
    let big = format!(
        "{{\"StreamName\": \"x\", \"Pad\": \"{}\"}}",
        "a".repeat(1 << 20)
    );
    let reply = s
        .call_with(
            "/createStream",
            &big,
            (ACCESS_KEY, SECRET_KEY),
            SystemTime::now(),
        )
        .await;
    assert_eq!(reply.status, 413);
    assert_eq!(
        reply.headers["x-amzn-errortype"],
        "RequestEntityTooLargeException"
    );

    // A declared x-amz-content-sha256 that is not the body's hash.
    let host = "127.0.0.1:4567";
    let wrong = sigv4::sha256_hex(b"something else");
    let headers = [("host", host), ("x-amz-content-sha256", wrong.as_str())];
    let creds = sigv4::Credentials {
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
        session_token: None,
    };
    let params = sigv4::SigningParams {
        credentials: &creds,
        region: "us-east-1",
        service: "kinesisvideo",
        time: SystemTime::now(),
    };
    let signed = sigv4::sign(
        &sigv4::Request {
            method: "POST",
            path: "/listStreams",
            query: "",
            headers: &headers,
        },
        &wrong,
        &params,
    );
    let mut request = Request::post("/listStreams")
        .header("host", host)
        .header("x-amz-content-sha256", &wrong);
    for (name, value) in signed {
        request = request.header(name, value);
    }
    let reply = s.send(request.body(Body::from("{}")).unwrap()).await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.headers["x-amzn-errortype"],
        "InvalidSignatureException"
    );

    // Query-string (presigned) form.
    let headers = [("host", host)];
    let query = sigv4::presign(
        &sigv4::Request {
            method: "POST",
            path: "/listStreams",
            query: "",
            headers: &headers,
        },
        &sigv4::sha256_hex(b"{}"),
        &params,
        std::time::Duration::from_secs(300),
    );
    let request = Request::post(format!("/listStreams?{query}"))
        .header("host", host)
        .body(Body::from("{}"))
        .unwrap();
    let reply = s.send(request).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
}
