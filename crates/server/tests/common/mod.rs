//! Helpers shared by the server's socket-level tests: a server on a free port with a temporary
//! data dir, and a raw HTTP/1.1 client so tests control chunking and timing exactly.
#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub state: server::AppState,
    pub _dir: tempfile::TempDir,
}

pub async fn start() -> TestServer {
    start_with(server::ingest::IngestState::new(), std::future::pending())
        .await
        .0
}

/// Starts a server with the given ingest state; the returned handle resolves when `serve` returns
/// after `shutdown` fires.
pub async fn start_with(
    ingest: server::ingest::IngestState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (
    TestServer,
    tokio::task::JoinHandle<Result<(), server::ServeError>>,
) {
    start_full(ingest, shutdown, None, |_| {}).await
}

/// A server whose settings `configure` changes first (timeouts, connection caps).
pub async fn start_with_config(configure: impl FnOnce(&mut server::Config)) -> TestServer {
    start_full(
        server::ingest::IngestState::new(),
        std::future::pending(),
        None,
        configure,
    )
    .await
    .0
}

/// A clock tests move by hand (LIVE_REPLAY pacing, expiry, the LIVE 30-second rule).
pub struct ManualClock(pub std::sync::Mutex<SystemTime>);

impl ManualClock {
    pub fn at(t: SystemTime) -> std::sync::Arc<Self> {
        std::sync::Arc::new(ManualClock(std::sync::Mutex::new(t)))
    }
    pub fn set(&self, t: SystemTime) {
        *self.0.lock().unwrap() = t;
    }
    pub fn get(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

impl server::Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.get()
    }
}

/// A server whose clock is `clock`.
pub async fn start_with_clock(clock: std::sync::Arc<ManualClock>) -> TestServer {
    start_full(
        server::ingest::IngestState::new(),
        std::future::pending(),
        Some(clock),
        |_| {},
    )
    .await
    .0
}

async fn start_full(
    ingest: server::ingest::IngestState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    clock: Option<std::sync::Arc<ManualClock>>,
    configure: impl FnOnce(&mut server::Config),
) -> (
    TestServer,
    tokio::task::JoinHandle<Result<(), server::ServeError>>,
) {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = server::Config::new(addr, dir.path().to_owned());
    configure(&mut config);
    let mut state = server::build(config).await.unwrap();
    state = state.with_ingest(ingest);
    if let Some(clock) = clock {
        state = state.with_clock(clock);
    }
    let serving = state.clone();
    let handle = tokio::spawn(async move { server::serve(serving, listener, shutdown).await });
    (
        TestServer {
            addr,
            state,
            _dir: dir,
        },
        handle,
    )
}

pub async fn create_stream(s: &TestServer, name: &str) {
    let body = format!(r#"{{"StreamName":"{name}","DataRetentionInHours":24}}"#);
    let (status, _) = post(s, "/createStream", &[], vec![body.into_bytes()], false).await;
    assert_eq!(status, 200);
}

/// Sends a signed POST; with `chunked` the parts go as HTTP chunks (a PutMedia body), else as one
/// Content-Length body. Returns the status and the response body.
pub async fn post(
    s: &TestServer,
    path: &str,
    extra: &[(&str, &str)],
    parts: Vec<Vec<u8>>,
    chunked: bool,
) -> (u16, Vec<u8>) {
    post_at(s, path, extra, parts, chunked, SystemTime::now()).await
}

/// [`post`] signed at `time` (for servers on a [`ManualClock`]).
pub async fn post_at(
    s: &TestServer,
    path: &str,
    extra: &[(&str, &str)],
    parts: Vec<Vec<u8>>,
    chunked: bool,
    time: SystemTime,
) -> (u16, Vec<u8>) {
    parse_response(&post_raw_at(s, path, extra, parts, chunked, time).await)
}

/// [`post_at`], returning the raw response bytes (heads, chunk framing and all).
pub async fn post_raw_at(
    s: &TestServer,
    path: &str,
    extra: &[(&str, &str)],
    parts: Vec<Vec<u8>>,
    chunked: bool,
    time: SystemTime,
) -> Vec<u8> {
    let host = s.addr.to_string();
    let len = parts.iter().map(Vec::len).sum::<usize>().to_string();
    let mut headers: Vec<(&str, &str)> =
        vec![("host", &host), ("content-type", "application/json")];
    headers.extend_from_slice(extra);
    let body_hash = if chunked {
        sigv4::EMPTY_SHA256.to_string()
    } else {
        sigv4::sha256_hex(&parts.concat())
    };
    let creds = sigv4::Credentials {
        access_key_id: "AKIDTEST".into(),
        secret_access_key: "secret".into(),
        session_token: None,
    };
    let signed = sigv4::sign(
        &sigv4::Request {
            method: "POST",
            path,
            query: "",
            headers: &headers,
        },
        &body_hash,
        &sigv4::SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service: "kinesisvideo",
            time,
        },
    );
    let mut head = format!("POST {path} HTTP/1.1\r\n");
    for (k, v) in headers
        .iter()
        .copied()
        .chain(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if chunked {
        head.push_str("transfer-encoding: chunked\r\nexpect: 100-continue\r\n");
    } else {
        head.push_str(&format!("content-length: {len}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");

    let stream = TcpStream::connect(s.addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(head.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        for p in parts {
            if chunked {
                if p.is_empty() {
                    continue;
                }
                let _ = wr.write_all(format!("{:x}\r\n", p.len()).as_bytes()).await;
                let _ = wr.write_all(&p).await;
                let _ = wr.write_all(b"\r\n").await;
            } else {
                let _ = wr.write_all(&p).await;
            }
        }
        if chunked {
            let _ = wr.write_all(b"0\r\n\r\n").await;
        }
        wr
    });
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), rd.read_to_end(&mut raw))
        .await
        .expect("response within 60 s")
        .unwrap();
    drop(writer.await);
    raw
}

/// The final (non-100) response head as sent (header names in their original case) and the
/// payloads of its HTTP chunks, one entry per chunk.
pub fn http_chunks(raw: &[u8]) -> (String, Vec<Vec<u8>>) {
    let mut rest = raw;
    loop {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("header end")
            + 4;
        let head = std::str::from_utf8(&rest[..end]).unwrap().to_owned();
        rest = &rest[end..];
        if head.starts_with("HTTP/1.1 100") {
            continue;
        }
        assert!(
            head.to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "{head}"
        );
        let mut chunks = Vec::new();
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16)
                    .unwrap();
            rest = &rest[line_end + 2..];
            if size == 0 {
                return (head, chunks);
            }
            chunks.push(rest[..size].to_vec());
            rest = &rest[size + 2..];
        }
    }
}

pub fn parse_response(raw: &[u8]) -> (u16, Vec<u8>) {
    let mut rest = raw;
    loop {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("header end")
            + 4;
        let head = std::str::from_utf8(&rest[..end])
            .unwrap()
            .to_ascii_lowercase();
        let status: u16 = head[9..12].parse().unwrap();
        rest = &rest[end..];
        if status == 100 {
            continue; // interim `100 Continue`
        }
        let body = if head.contains("transfer-encoding: chunked") {
            let mut out = Vec::new();
            loop {
                let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
                let size = usize::from_str_radix(
                    std::str::from_utf8(&rest[..line_end]).unwrap().trim(),
                    16,
                )
                .unwrap();
                rest = &rest[line_end + 2..];
                if size == 0 {
                    break;
                }
                out.extend_from_slice(&rest[..size]);
                rest = &rest[size + 2..];
            }
            out
        } else {
            rest.to_vec()
        };
        return (status, body);
    }
}

pub fn parse_acks(body: &[u8]) -> Vec<Value> {
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

pub fn count(acks: &[Value], kind: &str) -> usize {
    acks.iter().filter(|a| a["EventType"] == kind).count()
}

/// A plain GET (HLS resources are authorised by their session token); returns status, the
/// lower-cased response head and the body.
pub async fn get(s: &TestServer, path_and_query: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let req = format!("GET {path_and_query} HTTP/1.1\r\nhost: {}\r\norigin: http://player.example\r\nconnection: close\r\n\r\n", s.addr);
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .expect("response within 30 s")
        .unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end")
        + 4;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let (status, body) = parse_response(&raw);
    (status, head, body)
}

/// Sends `GET /healthz` on `c` without closing it (keep-alive) and reads the whole answer, which
/// ends with the body `ok`.
pub async fn healthz_kept_alive(c: &mut TcpStream) -> Vec<u8> {
    c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    while !raw.ends_with(b"\r\n\r\nok") {
        let n = c.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the response");
        raw.extend_from_slice(&buf[..n]);
    }
    raw
}

/// The path of a new ON_DEMAND session's master playlist over the last 10 minutes (producer
/// timestamps), in `container` (`FRAGMENTED_MP4` or `MPEG_TS`).
pub async fn session_url(s: &TestServer, name: &str, container: &str) -> String {
    let request = json!({
        "StreamName": name,
        "PlaybackMode": "ON_DEMAND",
        "ContainerFormat": container,
        "HLSFragmentSelector": {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": now_s() - 600.0, "EndTimestamp": now_s() - 0.001}},
    });
    let (status, body) = post(
        s,
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
    path_of(&url)
}

/// Creates stream `name` and ingests `mkv` (a 4-fragment fixture) with PutMedia, producer times
/// starting a minute ago.
pub async fn ingest(s: &TestServer, name: &str, mkv: &[u8]) {
    create_stream(s, name).await;
    let start_ts = format!("{:.3}", now_s() - 60.0);
    let headers = [
        ("x-amzn-stream-name", name),
        ("x-amzn-fragment-timecode-type", "RELATIVE"),
        ("x-amzn-producer-start-timestamp", start_ts.as_str()),
    ];
    let (status, body) = post(s, "/putMedia", &headers, vec![mkv.to_vec()], true).await;
    assert_eq!(status, 200);
    assert_eq!(count(&parse_acks(&body), "PERSISTED"), 4);
}

/// A `tracing` writer into a shared buffer (for a test binary's one global subscriber).
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A file of tests/fixtures.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Per cluster, per track: each frame's bytes, in ingest order (read with the MKV reader).
pub fn frames_by_cluster(mkv: &[u8]) -> Vec<std::collections::BTreeMap<u64, Vec<bytes::Bytes>>> {
    use media::mkv::{Event, MkvReader};
    let mut reader = MkvReader::default();
    reader.push(bytes::Bytes::copy_from_slice(mkv));
    let mut out: Vec<std::collections::BTreeMap<u64, Vec<bytes::Bytes>>> = Vec::new();
    let next = |r: &mut MkvReader, end: bool| if end { r.finish() } else { r.next_event() };
    for end in [false, true] {
        while let Some(event) = next(&mut reader, end).unwrap() {
            match event {
                Event::ClusterStart { .. } => out.push(Default::default()),
                Event::Frame(f) => out
                    .last_mut()
                    .unwrap()
                    .entry(f.track.0)
                    .or_default()
                    .push(f.data),
                _ => {}
            }
        }
    }
    out
}

/// Now, in epoch seconds (request timestamps).
pub fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The path and query of an absolute URL.
pub fn path_of(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    after_scheme[after_scheme.find('/').unwrap()..].to_owned()
}

/// The URI lines of a playlist.
pub fn uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_owned)
        .collect()
}
