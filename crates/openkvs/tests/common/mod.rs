//! Helpers shared by the client's integration tests: reading one HTTP/1.1 request the way a server would.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;

/// One request as received.
pub struct Captured {
    pub path: String,
    /// Header names lower-cased, values trimmed, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Reads the request line, the headers and a `Content-Length` body from `stream`.
pub fn read_request(stream: &TcpStream) -> Captured {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("request line");
    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).expect("header");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    Captured {
        path,
        headers,
        body: String::from_utf8(body).expect("utf-8 body"),
    }
}
