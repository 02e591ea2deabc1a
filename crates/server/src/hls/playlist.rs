//! HLS playlists (RFC 8216) as pure functions of a session's segment list: no I/O, no clock.
//!
//! The layout follows what KVS emits (docs/wire.md#hls-playlists): master `EXT-X-VERSION:1` with
//! attributes in KVS's order; media playlists `EXT-X-VERSION:7` (fMP4) with `EXTINF` at three
//! decimals, trailing zeros trimmed; every other URI relative, carrying the session token.

use std::fmt::Write;

/// Bumped whenever the bytes of a playlist for the same inputs change (part of cache keys).
pub const FORMAT_VERSION: u32 = 1;

/// One variant of the master playlist (track 1), with the audio rendition (track 2) if any.
#[derive(Clone, Debug, PartialEq)]
pub struct MasterPlaylist<'a> {
    pub token: &'a str,
    /// RFC 6381 codec strings of every track the variant plays (`avc1.640015`, `mp4a.40.2`).
    pub codecs: Vec<String>,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
    /// Peak bits per second over the session's fragments (RFC 8216 §4.3.4.2 BANDWIDTH).
    pub bandwidth: u64,
    /// Track 2 is an audio rendition of its own (fMP4); MPEG-TS muxes it into the variant.
    pub audio_rendition: bool,
    pub container: Container,
}

/// How segments are packaged (docs/wire.md#hls-segments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// One media playlist per track; `getMP4InitFragment.mp4` + `getMP4MediaFragment.mp4`.
    Fmp4,
    /// One muxed playlist; `getTSFragment.ts`.
    MpegTs,
}

/// One media segment (one stored fragment).
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// The KVS fragment number, as ListFragments shows it (docs/choices.md#playlist-details: not a session index).
    pub fragment_number: String,
    /// Exactly the time the segment spans in its own boxes (sum of its sample durations).
    pub duration_s: f64,
    /// `EXT-X-DISCONTINUITY` before this segment.
    pub discontinuity: bool,
    /// `SequenceNumber` of the init section this segment needs; an `EXT-X-MAP` is written
    /// whenever it differs from the previous segment's (fMP4 only).
    pub init_sequence: u32,
    /// `EXT-X-PROGRAM-DATE-TIME`, epoch milliseconds.
    pub program_date_time_ms: Option<i64>,
    /// LL-HLS: its partial segments, listed before its `EXTINF` (fMP4 only).
    pub parts: Vec<PartTag>,
    /// Stored: the whole segment is listed. `false` for the segment still arriving (LL-HLS),
    /// which has parts only.
    pub complete: bool,
}

/// One `EXT-X-PART` (RFC 8216bis §4.4.4.9): part `index` of its segment.
#[derive(Clone, Debug, PartialEq)]
pub struct PartTag {
    pub duration_s: f64,
    pub independent: bool,
}

/// The LL-HLS header of a media playlist (docs/architecture.md#low-latency-hls).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LowLatency {
    /// `EXT-X-PART-INF:PART-TARGET`: no part lasts longer.
    pub part_target_s: f64,
}

impl LowLatency {
    /// `PART-HOLD-BACK`: three part targets, as RFC 8216bis §4.4.3.8 recommends (at least two are
    /// required); hls.js in low-latency mode plays this far behind the newest part.
    pub fn part_hold_back_s(&self) -> f64 {
        3.0 * self.part_target_s
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MediaPlaylist<'a> {
    pub token: &'a str,
    pub container: Container,
    /// The track this playlist plays (fMP4); ignored for MPEG-TS.
    pub track: u64,
    /// ON_DEMAND: `EXT-X-PLAYLIST-TYPE:VOD`.
    pub vod: bool,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    /// A lower bound for `EXT-X-TARGETDURATION`, so live playlists keep a steady value.
    pub min_target_duration: u64,
    pub segments: &'a [Segment],
    /// `EXT-X-ENDLIST`: no segment will be added.
    pub ended: bool,
    /// LL-HLS tags (LIVE fMP4 sessions of a server run with `--ll-hls`).
    pub low_latency: Option<LowLatency>,
}

/// `EXTINF` / `FRAME-RATE` number: at most three decimals, trailing zeros trimmed (`1.01`, `0.998`, `2`).
fn decimal(value: f64) -> String {
    let mut s = format!("{value:.3}");
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    s
}

/// `2022-01-28T07:00:35.931Z` (RFC 8216 §4.3.2.6, ISO 8601 with milliseconds). Instants outside the years
/// -9999..=9999 (no fragment has one) clamp to those bounds.
pub fn iso8601_ms(epoch_ms: i64) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    let utc = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(epoch_ms) * 1_000_000)
        .unwrap_or_else(|_| {
            let bound = if epoch_ms < 0 {
                time::PrimitiveDateTime::MIN
            } else {
                time::PrimitiveDateTime::MAX
            };
            bound.assume_utc()
        });
    utc.format(FORMAT)
        .unwrap_or_else(|_| unreachable!("a UTC date-time has every component FORMAT names"))
}

pub fn render_master(p: &MasterPlaylist) -> String {
    let mut out = String::with_capacity(512 + 2 * p.token.len());
    out.push_str("#EXTM3U\n#EXT-X-VERSION:1\n");
    let token = p.token;
    if p.audio_rendition && p.container == Container::Fmp4 {
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:AUTOSELECT=YES,FORCED=NO,TYPE=AUDIO,URI=\"getHLSMediaPlaylist.m3u8?SessionToken={token}&TrackNumber=2\",GROUP-ID=\"audio\",DEFAULT=NO,NAME=\"audio\""
        );
    }
    let _ = write!(out, "#EXT-X-STREAM-INF:CODECS=\"{}\"", p.codecs.join(","));
    if let Some((w, h)) = p.resolution {
        let _ = write!(out, ",RESOLUTION={w}x{h}");
    }
    if let Some(fps) = p.frame_rate {
        let _ = write!(out, ",FRAME-RATE={}", decimal(fps));
    }
    let _ = write!(out, ",BANDWIDTH={}", p.bandwidth.max(1));
    if p.audio_rendition && p.container == Container::Fmp4 {
        out.push_str(",AUDIO=\"audio\"");
    }
    out.push('\n');
    match p.container {
        Container::Fmp4 => {
            let _ = writeln!(
                out,
                "getHLSMediaPlaylist.m3u8?SessionToken={token}&TrackNumber=1"
            );
        }
        Container::MpegTs => {
            let _ = writeln!(out, "getHLSMediaPlaylist.m3u8?SessionToken={token}");
        }
    }
    out
}

pub fn render_media(p: &MediaPlaylist) -> String {
    let mut out = String::with_capacity(256 + p.segments.len() * (160 + 2 * p.token.len()));
    let version = match p.container {
        // EXT-X-MAP in a media playlist without I-frames needs version 6; KVS writes 7.
        Container::Fmp4 => 7,
        // EXTINF with decimals needs version 3 (RFC 8216 §7).
        Container::MpegTs => 3,
    };
    // RFC 8216 §4.3.3.1: each EXTINF, rounded to the nearest integer, must not exceed it.
    let longest = p.segments.iter().map(|s| s.duration_s).fold(0.0, f64::max);
    let target = (longest.ceil() as u64).max(p.min_target_duration).max(1);
    let _ = writeln!(out, "#EXTM3U\n#EXT-X-VERSION:{version}");
    if p.vod {
        out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    }
    let _ = writeln!(
        out,
        "#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{}",
        p.media_sequence
    );
    if p.discontinuity_sequence > 0 {
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            p.discontinuity_sequence
        );
    }
    if let Some(ll) = p.low_latency {
        let _ = writeln!(
            out,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={}\n#EXT-X-PART-INF:PART-TARGET={}",
            decimal(ll.part_hold_back_s()),
            decimal(ll.part_target_s)
        );
    }
    out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    write_segments(&mut out, p.token, p.container, p.track, p.segments, None);
    if p.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// The segment lines of a media playlist: each segment's tags, its parts, and, once it is
/// complete, its `EXTINF` and URI. `current_init`: the init section the segments before these
/// use (an `EXT-X-MAP` is written when a segment needs another). Returns the last one's.
pub fn write_segments(
    out: &mut String,
    token: &str,
    container: Container,
    track: u64,
    segments: &[Segment],
    mut current_init: Option<u32>,
) -> Option<u32> {
    for s in segments {
        if s.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if container == Container::Fmp4 && current_init != Some(s.init_sequence) {
            let _ = writeln!(
                out,
                "#EXT-X-MAP:URI=\"getMP4InitFragment.mp4?SessionToken={token}&TrackNumber={}&SequenceNumber={}\"",
                track, s.init_sequence
            );
            current_init = Some(s.init_sequence);
        }
        if let Some(ms) = s.program_date_time_ms {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601_ms(ms));
        }
        for (index, part) in s.parts.iter().enumerate() {
            let _ = writeln!(
                out,
                "#EXT-X-PART:DURATION={},URI=\"{}\"{}",
                decimal(part.duration_s),
                part_uri(token, &s.fragment_number, index, track),
                if part.independent {
                    ",INDEPENDENT=YES"
                } else {
                    ""
                }
            );
        }
        if !s.complete {
            continue;
        }
        let _ = writeln!(out, "#EXTINF:{},", decimal(s.duration_s));
        match container {
            Container::Fmp4 => {
                let _ = writeln!(
                    out,
                    "getMP4MediaFragment.mp4?FragmentNumber={}&SessionToken={token}&TrackNumber={}",
                    s.fragment_number, track
                );
            }
            Container::MpegTs => {
                let _ = writeln!(
                    out,
                    "getTSFragment.ts?FragmentNumber={}&SessionToken={token}",
                    s.fragment_number
                );
            }
        }
    }
    current_init
}

/// `getMP4MediaPart.mp4`: part `index` of a fragment's track (docs/wire.md#ll-hls-resources).
pub fn part_uri(token: &str, fragment_number: &str, index: usize, track: u64) -> String {
    format!(
        "getMP4MediaPart.mp4?FragmentNumber={fragment_number}&PartNumber={index}&SessionToken={token}&TrackNumber={track}"
    )
}

/// `EXT-X-PRELOAD-HINT` for the part the server will have next (RFC 8216bis §4.4.5.3).
pub fn write_preload_hint(
    out: &mut String,
    token: &str,
    fragment_number: &str,
    index: usize,
    track: u64,
) {
    let _ = writeln!(
        out,
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
        part_uri(token, fragment_number, index, track)
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn golden(name: &str, actual: &str) {
        golden_in("src/hls/testdata", name, actual);
    }

    /// Compares `actual` with the golden file `dir/name` (relative to the crate);
    /// `UPDATE_GOLDEN=1` rewrites it. HLS playlists and DASH manifests use it.
    pub(crate) fn golden_in(dir: &str, name: &str, actual: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(dir)
            .join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, actual).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        assert_eq!(actual, expected, "golden file {name}");
    }

    fn seg(n: &str, d: f64, disc: bool, init: u32, pdt: Option<i64>) -> Segment {
        Segment {
            fragment_number: n.into(),
            duration_s: d,
            discontinuity: disc,
            init_sequence: init,
            program_date_time_ms: pdt,
            parts: Vec::new(),
            complete: true,
        }
    }

    #[test]
    fn numbers_and_dates_as_kvs_writes_them() {
        assert_eq!(decimal(1.857), "1.857");
        assert_eq!(decimal(1.0100001), "1.01");
        assert_eq!(decimal(0.9984), "0.998");
        assert_eq!(decimal(2.0), "2");
        assert_eq!(decimal(15.0), "15");
        assert_eq!(decimal(29.97002997), "29.97");
        assert_eq!(iso8601_ms(1_643_353_235_931), "2022-01-28T07:00:35.931Z");
        assert_eq!(iso8601_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso8601_ms(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(iso8601_ms(i64::MIN), "-9999-01-01T00:00:00.000Z");
    }

    #[test]
    fn master_with_audio_rendition() {
        let p = MasterPlaylist {
            token: "TOKEN~",
            codecs: vec!["avc1.640015".into(), "mp4a.40.2".into()],
            resolution: Some((320, 240)),
            frame_rate: Some(30.0),
            bandwidth: 463_000,
            audio_rendition: true,
            container: Container::Fmp4,
        };
        golden("master_av.m3u8", &render_master(&p));
        let audio_only = MasterPlaylist {
            codecs: vec!["mp4a.40.2".into()],
            resolution: None,
            frame_rate: None,
            audio_rendition: false,
            bandwidth: 99_000,
            ..p.clone()
        };
        golden("master_audio_only.m3u8", &render_master(&audio_only));
        golden(
            "master_ts.m3u8",
            &render_master(&MasterPlaylist {
                container: Container::MpegTs,
                ..p
            }),
        );
    }

    #[test]
    fn on_demand_with_discontinuities_dates_and_a_codec_change() {
        let p = MediaPlaylist {
            token: "TOKEN~",
            container: Container::Fmp4,
            track: 1,
            vod: true,
            media_sequence: 0,
            discontinuity_sequence: 0,
            min_target_duration: 1,
            segments: &[
                seg(
                    "00000000000000000000000000179557516846700000000",
                    1.0,
                    true,
                    0,
                    Some(1_643_353_235_931),
                ),
                seg(
                    "00000000000000000000000000179557516846700000001",
                    1.003,
                    true,
                    0,
                    Some(1_643_353_236_931),
                ),
                seg(
                    "00000000000000000000000000179557516846700000002",
                    2.68,
                    true,
                    1,
                    Some(1_643_353_237_934),
                ),
            ],
            ended: true,
            low_latency: None,
        };
        let text = render_media(&p);
        golden("on_demand_always.m3u8", &text);
        assert!(
            text.contains("#EXT-X-TARGETDURATION:3\n"),
            "ceil(2.68) = 3 ≥ every rounded EXTINF"
        );
        assert_eq!(
            text.matches("#EXT-X-MAP").count(),
            2,
            "a new init section at the codec change"
        );
    }

    #[test]
    fn live_window_keeps_its_sequence_numbers() {
        let p = MediaPlaylist {
            token: "T~",
            container: Container::Fmp4,
            track: 2,
            vod: false,
            media_sequence: 41,
            discontinuity_sequence: 3,
            min_target_duration: 2,
            segments: &[
                seg("41", 1.024, false, 0, None),
                seg("42", 0.981, true, 0, None),
            ],
            ended: false,
            low_latency: None,
        };
        let text = render_media(&p);
        golden("live_never.m3u8", &text);
        assert!(!text.contains("PLAYLIST-TYPE") && !text.contains("ENDLIST"));
        let ts = render_media(&MediaPlaylist {
            container: Container::MpegTs,
            ..p
        });
        golden("live_ts.m3u8", &ts);
        assert!(!ts.contains("EXT-X-MAP"));
    }

    /// LL-HLS: the server-control and part-info tags, parts before their segment's EXTINF, a
    /// segment still arriving with parts only, and a preload hint for its next part.
    #[test]
    fn live_with_parts_and_a_preload_hint() {
        let part = |d: f64, independent: bool| PartTag {
            duration_s: d,
            independent,
        };
        let mut stored = seg("7", 2.0, false, 0, Some(1_643_353_235_931));
        stored.parts = vec![part(0.3, true), part(0.3, false), part(0.2, false)];
        let mut arriving = seg("8", 0.0, false, 0, Some(1_643_353_237_931));
        arriving.parts = vec![part(0.3, true)];
        arriving.complete = false;
        let p = MediaPlaylist {
            token: "T~",
            container: Container::Fmp4,
            track: 1,
            vod: false,
            media_sequence: 7,
            discontinuity_sequence: 0,
            min_target_duration: 1,
            segments: &[stored],
            ended: false,
            low_latency: Some(LowLatency { part_target_s: 0.3 }),
        };
        let mut text = render_media(&p);
        let init = write_segments(&mut text, "T~", Container::Fmp4, 1, &[arriving], Some(0));
        assert_eq!(init, Some(0), "the same init section: no second EXT-X-MAP");
        write_preload_hint(&mut text, "T~", "8", 1, 1);
        golden("live_low_latency.m3u8", &text);
        assert!(text.contains("PART-HOLD-BACK=0.9\n"), "three part targets");
        assert_eq!(
            text.matches("#EXTINF").count(),
            1,
            "the arriving segment has parts only"
        );
    }
}
