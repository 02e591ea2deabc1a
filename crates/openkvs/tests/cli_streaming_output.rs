//! The streaming-output commands (`openkvs kinesis-video-media get-media … OUTFILE` and the archived-media
//! GetMediaForFragmentList / GetClip) run as a process against a scripted HTTP server: the body lands in
//! OUTFILE byte for byte, the Content-Type header is the output document, an error response leaves no file,
//! and a live body stopped by SIGINT or SIGTERM (or cut by the server) leaves the bytes that arrived.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// What the scripted server does after reading the request.
enum Reply {
    /// A complete chunked 200 response with these chunks.
    Chunks(&'static str, Vec<Vec<u8>>),
    /// 200 with these chunks, then the connection stays open until the client goes away (a live GetMedia).
    ChunksThenHold(Vec<Vec<u8>>),
    /// 200 with these chunks, then the connection is closed without the last chunk (a broken transfer).
    ChunksThenCut(Vec<Vec<u8>>),
    /// An error status with a JSON body.
    Error(u16, &'static str, &'static str),
}

/// Serves one request with `reply`; sends the request when it has been read.
fn serve_one(
    reply: Reply,
) -> (
    String,
    mpsc::Receiver<common::Captured>,
    thread::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let _ = tx.send(common::read_request(&stream));
        let mut stream = stream;
        let chunk = |stream: &mut TcpStream, bytes: &[u8]| {
            let _ = write!(stream, "{:x}\r\n", bytes.len());
            let _ = stream.write_all(bytes);
            let _ = stream.write_all(b"\r\n");
            let _ = stream.flush();
        };
        let head = |stream: &mut TcpStream, content_type: &str| {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nx-amzn-RequestId: r1\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
        };
        match reply {
            Reply::Chunks(content_type, parts) => {
                head(&mut stream, content_type);
                for p in &parts {
                    chunk(&mut stream, p);
                }
                let _ = stream.write_all(b"0\r\n\r\n");
            }
            Reply::ChunksThenHold(parts) => {
                head(&mut stream, "video/webm");
                for p in &parts {
                    chunk(&mut stream, p);
                }
                // Until the client closes the connection.
                let mut sink = [0u8; 64];
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            }
            Reply::ChunksThenCut(parts) => {
                head(&mut stream, "video/webm");
                for p in &parts {
                    chunk(&mut stream, p);
                }
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
            Reply::Error(status, code, message) => {
                let body = format!("{{\"message\":\"{message}\"}}");
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} Error\r\nContent-Type: application/json\r\nx-amzn-ErrorType: {code}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        }
    });
    (endpoint, rx, handle)
}

fn openkvs(endpoint: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_openkvs"));
    command
        .args(["--endpoint-url", endpoint, "--region", "us-east-1"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", "AKIDSTREAMTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_MAX_ATTEMPTS", "1");
    command
}

/// `openkvs kinesis-video-media get-media --stream-name cam --start-selector StartSelectorType=<selector> <out>`.
fn get_media(endpoint: &str, selector: &str, out: &Path) -> Command {
    openkvs(
        endpoint,
        &[
            "kinesis-video-media",
            "get-media",
            "--stream-name",
            "cam",
            "--start-selector",
            &format!("StartSelectorType={selector}"),
            out.to_str().expect("path"),
        ],
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Bytes that are not text, across chunk boundaries of odd sizes.
fn binary_parts() -> Vec<Vec<u8>> {
    let all: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 256) as u8).collect();
    vec![
        all[..1].to_vec(),
        all[1..40_001].to_vec(),
        all[40_001..].to_vec(),
    ]
}

#[test]
fn the_body_goes_to_outfile_and_the_content_type_is_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("media.mkv");
    let parts = binary_parts();
    let expected: Vec<u8> = parts.concat();
    let (endpoint, request, server) = serve_one(Reply::Chunks("video/webm", parts));
    let output = get_media(&endpoint, "EARLIEST", &out)
        .output()
        .expect("run");
    server.join().expect("server");
    let request = request.recv().expect("request");
    assert_eq!(request.path, "/getMedia");
    assert_eq!(
        request.body,
        r#"{"StreamName": "cam", "StartSelector": {"StartSelectorType": "EARLIEST"}}"#
    );
    assert!(request
        .headers
        .contains(&("content-type".to_owned(), "application/json".to_owned())));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "{\n    \"ContentType\": \"video/webm\"\n}\n"
    );
    assert_eq!(std::fs::read(&out).expect("outfile"), expected);
}

#[test]
fn output_formats_and_queries_apply_to_the_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("clip.mp4");
    for (args, want) in [
        (&["--output", "text"][..], "video/mp4\n"),
        (&["--query", "ContentType"][..], "\"video/mp4\"\n"),
        (&["--output", "yaml"][..], "ContentType: video/mp4\n"),
    ] {
        let (endpoint, request, server) =
            serve_one(Reply::Chunks("video/mp4", vec![b"ftyp".to_vec()]));
        let mut all = args.to_vec();
        all.extend([
            "kinesis-video-archived-media",
            "get-clip",
            "--stream-name",
            "cam",
            "--clip-fragment-selector",
            "FragmentSelectorType=SERVER_TIMESTAMP,TimestampRange={StartTimestamp=1,EndTimestamp=2}",
            out.to_str().expect("path"),
        ]);
        let output = openkvs(&endpoint, &all).output().expect("run");
        server.join().expect("server");
        assert_eq!(request.recv().expect("request").path, "/getClip");
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert_eq!(text(&output.stdout), want, "{args:?}");
        assert_eq!(std::fs::read(&out).expect("outfile"), b"ftyp");
    }
}

#[test]
fn an_error_response_is_printed_and_creates_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("none.mkv");
    let (endpoint, request, server) = serve_one(Reply::Error(
        404,
        "ResourceNotFoundException",
        "Stream cam not found",
    ));
    let output = openkvs(
        &endpoint,
        &[
            "kinesis-video-archived-media",
            "get-media-for-fragment-list",
            "--stream-name",
            "cam",
            "--fragments",
            "91343852333181432392682062607743920146264672789",
            "--",
            out.to_str().expect("path"),
        ],
    )
    .output()
    .expect("run");
    server.join().expect("server");
    assert_eq!(
        request.recv().expect("request").path,
        "/getMediaForFragmentList"
    );
    assert_eq!(output.status.code(), Some(254));
    assert_eq!(text(&output.stdout), "");
    assert_eq!(
        text(&output.stderr),
        // AWS_MAX_ATTEMPTS=1 in the standard retry mode (the default): botocore's suffix.
        "\nAn error occurred (ResourceNotFoundException) when calling the GetMediaForFragmentList \
         operation (reached max retries: 0): Stream cam not found\n"
    );
    assert!(!out.exists());
}

#[test]
fn an_outfile_that_cannot_be_created_is_reported_like_python() {
    let (endpoint, _request, server) = serve_one(Reply::Chunks("video/webm", vec![b"x".to_vec()]));
    let output = get_media(&endpoint, "NOW", Path::new("/nonexistent-dir/out.mkv"))
        .output()
        .expect("run");
    server.join().expect("server");
    assert_eq!(output.status.code(), Some(255));
    assert_eq!(
        text(&output.stderr),
        "\n[Errno 2] No such file or directory: '/nonexistent-dir/out.mkv'\n"
    );
}

#[test]
fn a_cut_transfer_fails_and_keeps_the_bytes_that_arrived() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("cut.mkv");
    let (endpoint, _request, server) = serve_one(Reply::ChunksThenCut(vec![
        b"fragment-1".to_vec(),
        b"fragment-2".to_vec(),
    ]));
    let output = get_media(&endpoint, "EARLIEST", &out)
        .output()
        .expect("run");
    server.join().expect("server");
    assert_eq!(output.status.code(), Some(255), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr)
            .starts_with("\nAn error occurred while reading from response stream: "),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(text(&output.stdout), "");
    assert_eq!(
        std::fs::read(&out).expect("outfile"),
        b"fragment-1fragment-2"
    );
}

/// Starts a live get-media, waits until `expected` bytes are in the file, sends `signal`, returns the output.
fn live_get_media_stopped_by(signal: &str, out: &Path, expected: &[u8]) -> Output {
    let (endpoint, _request, server) = serve_one(Reply::ChunksThenHold(vec![
        expected[..5].to_vec(),
        expected[5..].to_vec(),
    ]));
    let child: Child = get_media(&endpoint, "NOW", out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read(out).map(|b| b.len()).unwrap_or(0) < expected.len() {
        assert!(
            Instant::now() < deadline,
            "the chunks never reached the file"
        );
        thread::sleep(Duration::from_millis(20));
    }
    // Still running: a live body does not end by itself.
    thread::sleep(Duration::from_millis(200));
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let output = child.wait_with_output().expect("wait");
    server.join().expect("server");
    output
}

#[test]
fn ctrl_c_stops_a_live_body_with_130_and_keeps_what_arrived() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("live.mkv");
    let output = live_get_media_stopped_by("-INT", &out, b"chunk-one|chunk-two");
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "\n");
    assert_eq!(text(&output.stderr), "");
    assert_eq!(
        std::fs::read(&out).expect("outfile"),
        b"chunk-one|chunk-two"
    );
}

#[test]
fn sigterm_stops_a_live_body_with_143_and_keeps_what_arrived() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("live.mkv");
    let output = live_get_media_stopped_by("-TERM", &out, b"chunk-one|chunk-two");
    assert_eq!(output.status.code(), Some(143), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "");
    assert_eq!(
        std::fs::read(&out).expect("outfile"),
        b"chunk-one|chunk-two"
    );
}
