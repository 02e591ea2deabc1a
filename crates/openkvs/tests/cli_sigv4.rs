//! Oracle test for the client commands: the request `openkvs <service> <operation>` puts on the wire — body and
//! `Authorization` header — equals what botocore (the AWS CLI's library) builds for the same parameters,
//! credentials, region and time (the time is read back from the captured `X-Amz-Date`). Skipped with a notice
//! when python3 or botocore is missing.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::thread;

/// botocore's side: serialise the parameters (rest-json) and sign the captured request at the captured time.
const ORACLE: &str = r#"
import datetime, json, sys
from unittest import mock
from urllib.parse import urlsplit
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.serialize import create_serializer

case = json.load(sys.stdin)
session = botocore.session.get_session()
model = session.get_service_model(case["service"]).operation_model(case["operation"])
serialized = create_serializer("rest-json").serialize_to_request(json.loads(case["params"]), model)
netloc = urlsplit(case["url"]).netloc
request = AWSRequest(method="POST", url=case["url"], data=case["body"].encode(),
                     headers={"Content-Type": "application/json", "Host": netloc})
creds = Credentials(case["key"], case["secret"], case["token"])
when = datetime.datetime.strptime(case["amz_date"], "%Y%m%dT%H%M%SZ")
with mock.patch("botocore.auth.get_current_datetime", return_value=when):
    SigV4Auth(creds, model.service_model.signing_name, case["region"]).add_auth(request)
json.dump({"body": serialized["body"].decode(), "authorization": request.headers["Authorization"],
           "signing_name": model.service_model.signing_name}, sys.stdout)
"#;

mod common;

use common::{read_request, Captured};

/// Accepts one HTTP/1.1 request, answers 200 with `response`, returns what was received.
fn capture_one(listener: TcpListener, response: &'static str) -> thread::JoinHandle<Captured> {
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let captured = read_request(&stream);
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-amzn-RequestId: test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{response}",
            response.len()
        );
        stream.write_all(reply.as_bytes()).expect("reply");
        captured
    })
}

fn botocore_available() -> bool {
    match Command::new("python3")
        .args(["-c", "import botocore"])
        .output()
    {
        Ok(o) if o.status.success() => true,
        _ => {
            eprintln!(
                "SKIPPED cli_sigv4: python3 with botocore is not available (pip install botocore)"
            );
            false
        }
    }
}

struct Case {
    service: &'static str,
    operation: &'static str,
    args: &'static [&'static str],
    /// The same parameters as botocore takes them (JSON).
    params: &'static str,
    token: Option<&'static str>,
    response: &'static str,
}

const CASES: &[Case] = &[
    Case {
        service: "kinesis-video-archived-media",
        operation: "GetHLSStreamingSessionURL",
        args: &[
            "get-hls-streaming-session-url",
            "--stream-name",
            "cam 1/ä",
            "--playback-mode",
            "ON_DEMAND",
            "--hls-fragment-selector",
            "FragmentSelectorType=PRODUCER_TIMESTAMP,TimestampRange={StartTimestamp=2024-01-01T00:00:00.5Z,EndTimestamp=1704067300}",
            "--container-format",
            "FRAGMENTED_MP4",
            "--discontinuity-mode",
            "ON_DISCONTINUITY",
            "--display-fragment-timestamp",
            "ALWAYS",
            "--expires",
            "900",
            "--max-media-playlist-fragment-results",
            "42",
        ],
        params: r#"{"StreamName": "cam 1/ä", "PlaybackMode": "ON_DEMAND",
            "HLSFragmentSelector": {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
              "TimestampRange": {"StartTimestamp": "2024-01-01T00:00:00.5Z", "EndTimestamp": 1704067300}},
            "ContainerFormat": "FRAGMENTED_MP4", "DiscontinuityMode": "ON_DISCONTINUITY",
            "DisplayFragmentTimestamp": "ALWAYS", "Expires": 900, "MaxMediaPlaylistFragmentResults": 42}"#,
        token: None,
        response: r#"{"HLSStreamingSessionURL": "http://x/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=t~"}"#,
    },
    Case {
        service: "kinesisvideo",
        operation: "CreateStream",
        args: &[
            "create-stream",
            "--stream-name",
            "s1",
            "--data-retention-in-hours",
            "24",
            "--media-type",
            "video/h264",
            "--tags",
            "b=2,a=1",
        ],
        params: r#"{"StreamName": "s1", "MediaType": "video/h264", "DataRetentionInHours": 24, "Tags": {"b": "2", "a": "1"}}"#,
        token: Some("IQoJb3JpZ2luX2VjE//session+token="),
        response: r#"{"StreamARN": "arn:aws:kinesisvideo:us-west-2:1:stream/s1/1"}"#,
    },
    // Streaming outputs: the body goes to the outfile (here /dev/null); the request is what matters.
    Case {
        service: "kinesis-video-media",
        operation: "GetMedia",
        args: &[
            "get-media",
            "--stream-arn",
            "arn:aws:kinesisvideo:us-west-2:1:stream/cam/1",
            "--start-selector",
            "StartSelectorType=FRAGMENT_NUMBER,AfterFragmentNumber=91343852333181432392682062607743920146264672789",
            "/dev/null",
        ],
        params: r#"{"StreamARN": "arn:aws:kinesisvideo:us-west-2:1:stream/cam/1",
            "StartSelector": {"StartSelectorType": "FRAGMENT_NUMBER",
              "AfterFragmentNumber": "91343852333181432392682062607743920146264672789"}}"#,
        token: None,
        response: "",
    },
    Case {
        service: "kinesis-video-archived-media",
        operation: "GetMediaForFragmentList",
        args: &[
            "get-media-for-fragment-list",
            "/dev/null",
            "--stream-name",
            "cam",
            "--fragments",
            "2",
            "1",
        ],
        params: r#"{"StreamName": "cam", "Fragments": ["2", "1"]}"#,
        token: None,
        response: "",
    },
    Case {
        service: "kinesis-video-archived-media",
        operation: "GetClip",
        args: &[
            "get-clip",
            "--stream-name",
            "cam",
            "--clip-fragment-selector",
            "FragmentSelectorType=PRODUCER_TIMESTAMP,TimestampRange={StartTimestamp=2024-01-01T00:00:00Z,EndTimestamp=1704067300}",
            "/dev/null",
        ],
        params: r#"{"StreamName": "cam", "ClipFragmentSelector": {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": "2024-01-01T00:00:00Z", "EndTimestamp": 1704067300}}}"#,
        token: None,
        response: "",
    },
];

#[test]
fn request_body_and_signature_equal_botocores() {
    if !botocore_available() {
        return;
    }
    let (key, secret, region) = ("AKIACLIORACLE0000001", "cli/oracle+secret==", "us-west-2");
    for case in CASES {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = capture_one(listener, case.response);
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_openkvs"));
        command
            .args([
                "--endpoint-url",
                &endpoint,
                "--region",
                region,
                case.service,
            ])
            .args(case.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        if let Some(token) = case.token {
            command.env("AWS_SESSION_TOKEN", token);
        }
        let output = command.output().expect("run openkvs");
        assert!(
            output.status.success(),
            "openkvs failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let captured = server.join().expect("capture thread");
        let header = |name: &str| {
            captured
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {name} header"))
        };
        let amz_date = header("x-amz-date");
        if let Some(token) = case.token {
            assert_eq!(header("x-amz-security-token"), token);
        }

        let input = serde_json::json!({
            "service": case.service,
            "operation": case.operation,
            // Passed as text: python keeps its key order (serde_json here would sort it).
            "params": case.params,
            "url": format!("{endpoint}{}", captured.path),
            "body": captured.body,
            "amz_date": amz_date,
            "key": key,
            "secret": secret,
            "token": case.token,
            "region": region,
        });
        let mut oracle = Command::new("python3")
            .args(["-c", ORACLE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        oracle
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.to_string().as_bytes())
            .expect("write oracle input");
        let result = oracle.wait_with_output().expect("oracle");
        assert!(
            result.status.success(),
            "oracle failed: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        let expected: serde_json::Value =
            serde_json::from_slice(&result.stdout).expect("oracle JSON");

        assert_eq!(expected["signing_name"], "kinesisvideo");
        assert_eq!(
            captured.body,
            expected["body"].as_str().expect("body"),
            "{}",
            case.operation
        );
        assert_eq!(
            header("authorization"),
            expected["authorization"].as_str().expect("authorization"),
            "{}",
            case.operation
        );
        assert_eq!(header("content-type"), "application/json");
    }
}
