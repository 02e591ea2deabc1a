//! Requests refused before any handler runs still get the AWS error form (CONTRACT.md C2: status,
//! `x-amzn-ErrorType`, JSON `{"__type", "Message"}`): a query string that does not parse, a URI
//! longer than hyper accepts, over-large headers, a request that is not HTTP.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::*;

/// Sends `request` on a new connection and returns the raw answer, up to the server's close.
async fn raw_exchange(s: &TestServer, request: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    // The server may answer and close before it has read everything (a 414 needs only the line).
    let _ = c.write_all(request).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), c.read_to_end(&mut raw))
        .await
        .expect("answer within 30 s");
    raw
}

/// Asserts an AWS-form error of `status` and `error_type`; returns its message.
fn assert_aws_error(raw: &[u8], status: u16, error_type: &str) -> String {
    let text = String::from_utf8_lossy(raw);
    let head = &text[..text.find("\r\n\r\n").expect("a complete head")];
    assert!(
        head.starts_with(&format!("HTTP/1.1 {status} ")),
        "{text:.400}"
    );
    assert!(
        head.contains(&format!("\r\nx-amzn-ErrorType: {error_type}")),
        "{head}"
    );
    assert!(head.contains("\r\nx-amzn-RequestId: "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\ncontent-type: application/json"),
        "{head}"
    );
    let (got, body) = parse_response(raw);
    assert_eq!(got, status);
    let body: serde_json::Value = serde_json::from_slice(&body).expect("a JSON body");
    assert_eq!(body["__type"], error_type, "{body}");
    body["Message"].as_str().expect("a Message").to_owned()
}

#[tokio::test]
async fn a_query_parameter_given_twice_is_an_invalid_argument() {
    let s = start().await;
    let raw = raw_exchange(
        &s,
        b"GET /hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=a&SessionToken=b HTTP/1.1\r\n\
          host: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    let message = assert_aws_error(&raw, 400, "InvalidArgumentException");
    assert!(message.contains("SessionToken"), "{message}");
}

#[tokio::test]
async fn a_100_kb_uri_gets_414_in_the_aws_form() {
    let s = start().await;
    let token = "A".repeat(100 * 1024);
    let request = format!(
        "GET /hls/v1/getHLSMasterPlaylist.m3u8?SessionToken={token} HTTP/1.1\r\nhost: x\r\n\r\n"
    );
    let raw = raw_exchange(&s, request.as_bytes()).await;
    assert_aws_error(&raw, 414, "InvalidArgumentException");
    // The server goes on serving.
    assert_eq!(get(&s, "/healthz").await.0, 200);
}

#[tokio::test]
async fn over_large_headers_get_431_and_a_request_that_is_not_http_400() {
    let s = start().await;
    let request = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "b".repeat(1024 * 1024)
    );
    let raw = raw_exchange(&s, request.as_bytes()).await;
    assert_aws_error(&raw, 431, "InvalidArgumentException");

    let raw = raw_exchange(&s, b"NOT HTTP AT ALL\r\n\r\n").await;
    assert_aws_error(&raw, 400, "InvalidArgumentException");
}

#[tokio::test]
async fn a_bad_request_after_a_good_one_on_a_kept_alive_connection_is_answered_too() {
    let s = start().await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    assert_eq!(parse_response(&healthz_kept_alive(&mut c).await).0, 200);
    // Let the first response's end be flushed and the connection go idle.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let long = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "p".repeat(70_000));
    let _ = c.write_all(long.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), c.read_to_end(&mut raw))
        .await
        .expect("answer within 30 s");
    assert_aws_error(&raw, 414, "InvalidArgumentException");
}
