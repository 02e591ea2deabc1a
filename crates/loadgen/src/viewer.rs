//! One viewer, behaving like hls.js on a LIVE session: GetDataEndpoint + GetHLSStreamingSessionURL, the master
//! playlist once, then every media playlist it names (video, and the audio rendition) reloaded every target
//! duration, or half of it when the playlist did not change; the init segment once, and each new media fragment
//! once (starting three fragments from the live edge, as hls.js's `liveSyncDurationCount`). One keep-alive
//! connection per viewer, as a browser tab, reopened if the server closes it.

use crate::control::Control;
use crate::stats::{Count, Sample, Stats};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fragments hls.js starts behind the live edge.
const LIVE_SYNC_FRAGMENTS: usize = 3;
const SESSION_RETRY: Duration = Duration::from_millis(500);

pub struct Viewer {
    pub stream: String,
    pub control: Arc<Control>,
    pub stats: Arc<Stats>,
    pub stop: Arc<AtomicBool>,
    pub live: Arc<tokio::sync::Notify>,
}

/// One keep-alive HTTP/1.1 connection.
struct Connection {
    address: String,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

impl Connection {
    async fn open(&mut self) -> Result<(), String> {
        let stream = tokio::net::TcpStream::connect(&self.address)
            .await
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        self.sender = Some(sender);
        Ok(())
    }

    /// GET `path_and_query`: status and body, retried once on a fresh connection if the kept-alive one was closed.
    async fn get(&mut self, path_and_query: &str) -> Result<(http::StatusCode, Bytes), String> {
        for attempt in 0..2 {
            if self.sender.as_ref().is_none_or(|sender| sender.is_closed()) {
                self.open().await?;
            }
            let Some(sender) = self.sender.as_mut() else {
                continue;
            };
            let request = http::Request::get(path_and_query)
                .header(http::header::HOST, &self.address)
                .body(Empty::new())
                .map_err(|e| e.to_string())?;
            let sent = match sender.ready().await {
                Ok(()) => sender.send_request(request).await,
                Err(error) => Err(error),
            };
            match sent {
                Ok(response) => {
                    let status = response.status();
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| e.to_string())?;
                    return Ok((status, body.to_bytes()));
                }
                Err(error) if attempt == 0 && (error.is_canceled() || error.is_closed()) => {
                    self.sender = None
                }
                Err(error) => return Err(error.to_string()),
            }
        }
        Err("the connection closed twice".into())
    }
}

/// A media playlist the viewer follows.
struct Followed {
    uri: String,
    /// Media sequence number of the last fragment fetched.
    last_sequence: Option<u64>,
    init_fetched: HashSet<String>,
}

/// What a media playlist says, as far as a player needs it.
#[derive(Debug, PartialEq)]
pub struct MediaPlaylist {
    pub target_duration: u64,
    pub media_sequence: u64,
    pub maps: Vec<String>,
    pub segments: Vec<String>,
}

pub fn parse_media_playlist(text: &str) -> MediaPlaylist {
    let mut playlist = MediaPlaylist {
        target_duration: 1,
        media_sequence: 0,
        maps: Vec::new(),
        segments: Vec::new(),
    };
    for line in text.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            playlist.target_duration = value.parse().unwrap_or(1);
        } else if let Some(value) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            playlist.media_sequence = value.parse().unwrap_or(0);
        } else if line.starts_with("#EXT-X-MAP:") {
            playlist.maps.extend(quoted_uri(line));
        } else if !line.is_empty() && !line.starts_with('#') {
            playlist.segments.push(line.to_owned());
        }
    }
    playlist
}

/// The media playlists of a master playlist: variant URIs and `EXT-X-MEDIA` renditions' `URI`s.
pub fn parse_master_playlist(text: &str) -> Vec<String> {
    let mut uris = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("#EXT-X-MEDIA:") {
            uris.extend(quoted_uri(line));
        } else if !line.is_empty() && !line.starts_with('#') {
            uris.push(line.to_owned());
        }
    }
    uris
}

fn quoted_uri(line: &str) -> Option<String> {
    let start = line.find("URI=\"")? + 5;
    let end = start + line[start..].find('"')?;
    Some(line[start..end].to_owned())
}

/// `uri` relative to the directory of `base` (both paths with queries; absolute http URLs keep their path).
fn resolve(base: &str, uri: &str) -> String {
    if let Some(rest) = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
    {
        return rest
            .find('/')
            .map_or_else(|| "/".to_owned(), |slash| rest[slash..].to_owned());
    }
    if uri.starts_with('/') {
        return uri.to_owned();
    }
    let base_path = base.split('?').next().unwrap_or(base);
    let directory = &base_path[..=base_path.rfind('/').unwrap_or(0)];
    format!("{directory}{uri}")
}

impl Viewer {
    pub async fn run(self) {
        let _ = tokio::time::timeout(Duration::from_secs(30), self.live.notified()).await;
        let url = loop {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            match self.control.live_session_url(&self.stream).await {
                Ok(url) => break url,
                // A stream whose first fragment is not yet persisted has no LIVE session yet.
                Err(error) if error.0 == "ResourceNotFoundException" => {
                    tokio::time::sleep(SESSION_RETRY).await
                }
                Err(error) => {
                    eprintln!(
                        "openkvs-load: LIVE session for {}: {}",
                        self.stream, error.0
                    );
                    self.stats.add(Count::ControlErrors, 1);
                    tokio::time::sleep(SESSION_RETRY).await;
                }
            }
        };
        let Ok(parsed) = reqwest::Url::parse(&url) else {
            self.stats.add(Count::ControlErrors, 1);
            return;
        };
        let address = format!(
            "{}:{}",
            parsed.host_str().unwrap_or("127.0.0.1"),
            parsed.port_or_known_default().unwrap_or(80)
        );
        let master = match parsed.query() {
            Some(query) => format!("{}?{query}", parsed.path()),
            None => parsed.path().to_owned(),
        };
        let mut connection = Connection {
            address,
            sender: None,
        };
        let Some(text) = self.fetch(&mut connection, &master, Sample::Playlist).await else {
            return;
        };
        let mut followed: Vec<Followed> = parse_master_playlist(&String::from_utf8_lossy(&text))
            .iter()
            .map(|uri| Followed {
                uri: resolve(&master, uri),
                last_sequence: None,
                init_fetched: HashSet::new(),
            })
            .collect();
        self.stats.add(Count::ViewersPlaying, 1);
        while !self.stop.load(Ordering::Relaxed) {
            let tick = Instant::now();
            let mut changed = false;
            let mut target = 1;
            for playlist in &mut followed {
                let Some(text) = self
                    .fetch(&mut connection, &playlist.uri, Sample::Playlist)
                    .await
                else {
                    continue;
                };
                let media = parse_media_playlist(&String::from_utf8_lossy(&text));
                target = target.max(media.target_duration);
                for map in &media.maps {
                    if playlist.init_fetched.insert(map.clone()) {
                        self.fetch(&mut connection, &resolve(&playlist.uri, map), Sample::Init)
                            .await;
                    }
                }
                let first_new = match playlist.last_sequence {
                    Some(last) => usize::try_from((last + 1).saturating_sub(media.media_sequence))
                        .unwrap_or(0),
                    None => media.segments.len().saturating_sub(LIVE_SYNC_FRAGMENTS),
                };
                for (index, segment) in media.segments.iter().enumerate().skip(first_new) {
                    changed = true;
                    self.fetch(
                        &mut connection,
                        &resolve(&playlist.uri, segment),
                        Sample::Fragment,
                    )
                    .await;
                    playlist.last_sequence = Some(media.media_sequence + index as u64);
                }
            }
            let wait = if changed {
                Duration::from_secs(target)
            } else {
                Duration::from_millis(target * 500)
            };
            tokio::time::sleep_until((tick + wait).into()).await;
        }
    }

    /// One GET, timed and counted; the body when the answer was 200.
    async fn fetch(&self, connection: &mut Connection, path: &str, kind: Sample) -> Option<Bytes> {
        let sent = Instant::now();
        match connection.get(path).await {
            Ok((status, body)) => {
                self.stats
                    .sample(kind, sent.elapsed().as_secs_f64() * 1000.0);
                match kind {
                    Sample::Playlist => self.stats.add(Count::Playlists, 1),
                    _ => {
                        self.stats.add(Count::Fragments, 1);
                        self.stats.add(Count::FragmentBytes, body.len() as u64);
                    }
                }
                if status == http::StatusCode::OK {
                    Some(body)
                } else {
                    if !self.stop.load(Ordering::Relaxed) {
                        eprintln!(
                            "openkvs-load: {} answered {status} to {}",
                            self.stream,
                            path.split('?').next().unwrap_or(path)
                        );
                    }
                    self.stats.add(Count::Non200, 1);
                    None
                }
            }
            Err(error) => {
                eprintln!("openkvs-load: {}: GET failed: {error}", self.stream);
                self.stats.add(Count::HttpErrors, 1);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_playlists_as_openkvs_writes_them() {
        let master = "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MEDIA:AUTOSELECT=YES,FORCED=NO,TYPE=AUDIO,URI=\"getHLSMediaPlaylist.m3u8?SessionToken=t&TrackNumber=2\",GROUP-ID=\"audio\",DEFAULT=NO,NAME=\"audio\"\n#EXT-X-STREAM-INF:CODECS=\"avc1.64000d,mp4a.40.2\",AUDIO=\"audio\",BANDWIDTH=1\ngetHLSMediaPlaylist.m3u8?SessionToken=t&TrackNumber=1\n";
        assert_eq!(
            parse_master_playlist(master),
            [
                "getHLSMediaPlaylist.m3u8?SessionToken=t&TrackNumber=2",
                "getHLSMediaPlaylist.m3u8?SessionToken=t&TrackNumber=1"
            ]
        );
        let media = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:5\n#EXT-X-MAP:URI=\"getMP4InitFragment.mp4?SessionToken=t&TrackNumber=1&SequenceNumber=0\"\n#EXTINF:1.0,\ngetMP4MediaFragment.mp4?FragmentNumber=9&SessionToken=t&TrackNumber=1\n";
        assert_eq!(
            parse_media_playlist(media),
            MediaPlaylist {
                target_duration: 2,
                media_sequence: 5,
                maps: vec![
                    "getMP4InitFragment.mp4?SessionToken=t&TrackNumber=1&SequenceNumber=0".into()
                ],
                segments: vec![
                    "getMP4MediaFragment.mp4?FragmentNumber=9&SessionToken=t&TrackNumber=1".into()
                ],
            }
        );
        assert_eq!(
            resolve("/getHLSMasterPlaylist.m3u8?a=/b", "x.m3u8?c"),
            "/x.m3u8?c"
        );
        assert_eq!(resolve("/p/q.m3u8", "http://h:1/r/s?t"), "/r/s?t");
    }
}
