//! Connection caps and timeouts (`server::conn`) on a real socket: silent and slow clients are
//! closed after the header-read timeout, kept-alive ones after the idle timeout, connections over
//! the per-address or total cap are refused at once with a 503 in the AWS form, and through all
//! of it a new client is still served. Peers are told apart by binding the client sockets to
//! different loopback addresses (all of 127.0.0.0/8 is loopback on Linux).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

mod common;
use common::*;

/// A connection to `server` from the loopback address `from`.
async fn connect_from(from: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    socket.connect(server).await.unwrap()
}

/// Reads until the server closes the connection (EOF or reset) and returns what came; panics if
/// it is still open after `within`.
async fn read_until_closed(c: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut raw = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server kept the connection open for {within:?}"
    );
    raw
}

/// A `GET` on a new connection from `from`; returns the raw response.
async fn get_from(from: &str, s: &TestServer, path: &str) -> Vec<u8> {
    let mut c = connect_from(from, s.addr).await;
    c.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    read_until_closed(&mut c, Duration::from_secs(30)).await
}

/// Asserts `raw` is the 503 refusal in the AWS form (CONTRACT.md C2).
fn assert_refused(raw: &[u8]) {
    let text = String::from_utf8_lossy(raw);
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    assert!(
        text.contains("\r\nx-amzn-ErrorType: ServiceUnavailableException\r\n"),
        "{text}"
    );
    let (status, body) = parse_response(raw);
    assert_eq!(status, 503);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["__type"], "ServiceUnavailableException");
}

/// A client is served `/healthz` and a signed control-plane call.
async fn assert_served(s: &TestServer) {
    let (status, _, body) = get(s, "/healthz").await;
    assert_eq!((status, &body[..]), (200, &b"ok"[..]));
    let (status, body) = post(s, "/listStreams", &[], vec![b"{}".to_vec()], false).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn silent_connections_over_the_per_address_cap_are_refused_and_closed_after_the_header_timeout(
) {
    let s = start_with_config(|c| {
        c.connections.max_connections_per_ip = 8;
        c.connections.header_read_timeout = Duration::from_secs(2);
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(connect_from("127.0.0.2", s.addr).await);
    }
    // Past the cap, each new connection from that address is answered 503 and closed at once.
    for _ in 0..12 {
        let mut extra = connect_from("127.0.0.2", s.addr).await;
        assert_refused(&read_until_closed(&mut extra, Duration::from_secs(5)).await);
    }
    // Everyone else is served meanwhile.
    assert_served(&s).await;
    // The silent ones are closed once the header timeout has passed, without any answer...
    for mut c in silent {
        let raw = read_until_closed(&mut c, Duration::from_secs(30)).await;
        assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));
    }
    // ...which frees the address's places.
    let raw = get_from("127.0.0.2", &s, "/healthz").await;
    assert_eq!(parse_response(&raw), (200, b"ok".to_vec()));
}

#[tokio::test]
async fn a_client_sending_its_headers_slowly_is_closed_after_the_header_timeout() {
    let s = start_with_config(|c| {
        c.connections.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let (mut rd, mut wr) = connect_from("127.0.0.3", s.addr).await.into_split();
    wr.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    // One header byte every 100 ms, for as long as the server lets it.
    let dripping = tokio::spawn(async move {
        while wr.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut raw = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), rd.read_to_end(&mut raw)).await;
    assert!(closed.is_ok(), "a slow header kept its connection for 30 s");
    assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));
    dripping.abort();
    assert_served(&s).await;
}

#[tokio::test]
async fn over_the_total_cap_new_connections_get_503_until_places_free_up() {
    let s = start_with_config(|c| {
        c.connections.max_connections = 4;
        c.connections.header_read_timeout = Duration::from_secs(2);
    })
    .await;
    let mut silent = Vec::new();
    for i in 0..4 {
        silent.push(connect_from(&format!("127.0.1.{}", i + 1), s.addr).await);
    }
    assert_refused(&get_from("127.0.0.1", &s, "/healthz").await);
    // The silent connections time out; then the server takes new ones again.
    let served = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let raw = get_from("127.0.0.1", &s, "/healthz").await;
            if parse_response(&raw).0 == 200 {
                return;
            }
            assert_refused(&raw);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(served.is_ok(), "still refused after the header timeout");
    assert_served(&s).await;
    drop(silent);
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let s = start_with_config(|c| {
        c.connections.idle_timeout = Duration::from_secs(1);
        // Far longer than the bound below: the close must come from the idle timeout.
        c.connections.header_read_timeout = Duration::from_secs(120);
    })
    .await;
    let mut c = connect_from("127.0.0.4", s.addr).await;
    // Two requests on the one connection: keep-alive works.
    for _ in 0..2 {
        assert_eq!(parse_response(&healthz_kept_alive(&mut c).await).0, 200);
    }
    let raw = read_until_closed(&mut c, Duration::from_secs(60)).await;
    assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));
}
