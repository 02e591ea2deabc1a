//! The MPD writer (ISO/IEC 23009-1; docs/wire.md#dash-manifest): pure, from a plain description
//! of the session's fragments to the XML text, so every layout is pinned by a golden file in
//! `src/dash/testdata/`.
//!
//! ```text
//! MPD (static | dynamic)
//! └─ Period per continuous run of fragments (id = its first fragment number)
//!    └─ AdaptationSet per track (video: H.264 / H.265, audio: AAC)
//!       └─ Representation (codecs, size, frame rate, bandwidth)
//!          └─ SegmentTemplate timescale=1000 (initialization, media=…&Time=$Time$)
//!             └─ SegmentTimeline: one S per fragment, t and d in ms, kvs:ts / kvs:fn
//! ```
//! The media URL names a fragment by its start on the session timeline (`$Time$`, ms since the
//! session's origin) and the first fragment of its Period; the server maps that back to the
//! fragment without any session state (docs/choices.md#dash-segment-addressing).

use std::fmt::Write as _;

use super::super::hls::playlist::iso8601_ms;

/// Bumped whenever the MPD for the same input changes; the golden files are pinned to it.
pub const FORMAT_VERSION: u32 = 1;

/// The `kvs:` attributes' namespace (declared on `MPD`, so namespace-aware parsers accept
/// `kvs:ts` / `kvs:fn`; AWS's own URI is not published, docs/choices.md#dash-manifest-details).
pub const KVS_NAMESPACE: &str = "urn:openkvs:dash:kvs:2026";

/// A gap or overlap above this between a fragment's end and the next one's start on the session
/// timeline starts a new Period (the HLS ON_DISCONTINUITY threshold, docs/wire.md#hls-playlists).
pub const GAP_MS: u64 = store::Continuity::GAP_MS as u64;

/// One fragment of the session's window, as the manifest lays it out.
#[derive(Clone, Debug, PartialEq)]
pub struct Fragment {
    /// The 47-digit fragment number (Period ids, `kvs:fn`).
    pub number: String,
    /// Start on the session timeline, ms since its origin (= the media segments' tfdt).
    pub start_ms: u64,
    /// Track 1's span, ms (the fragment length ListFragments shows).
    pub duration_ms: u64,
    /// The selected (server or producer) timestamp, epoch ms (`kvs:ts`).
    pub timestamp_ms: i64,
    /// (track number, init `SequenceNumber`) of each track, in track order.
    pub tracks: Vec<(u64, u32)>,
}

/// What one track's codec config puts on its AdaptationSet / Representation.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackInfo {
    pub track: u64,
    /// The codec config's init `SequenceNumber` within the track.
    pub sequence: u32,
    /// RFC 6381 `codecs` (`avc1.64001f`, `hvc1.…`, `mp4a.40.2`), as HLS's `CODECS`.
    pub codecs: String,
    pub media: TrackMedia,
    /// Bits per second (an estimate, docs/choices.md#dash-manifest-details).
    pub bandwidth: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TrackMedia {
    Video {
        width: u32,
        height: u32,
        frame_rate: Option<f64>,
    },
    Audio {
        sample_rate: u32,
        channels: u32,
    },
}

/// `MPD@type` and what goes with it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Presentation {
    /// ON_DEMAND: every fragment is known; gaps between Periods are closed up.
    Static,
    /// LIVE and LIVE_REPLAY: Periods sit at their media times, mapped to the wall clock by
    /// `availabilityStartTime`.
    Dynamic {
        availability_start_ms: i64,
        /// `publishTime` and the `UTCTiming` value: the server's clock now.
        now_ms: i64,
        /// No fragment will be added (LIVE_REPLAY past its End): no more updates.
        ended: bool,
    },
}

pub struct Manifest<'a> {
    /// Written into every URL (already URL-safe: base64url and `~`).
    pub token: &'a str,
    pub presentation: Presentation,
    pub fragments: &'a [Fragment],
    /// Every codec config the fragments use.
    pub tracks: &'a [TrackInfo],
    pub display_timestamp: bool,
    pub display_fragment_number: bool,
}

/// A run of fragments played as one Period.
struct Period<'a> {
    fragments: &'a [Fragment],
    /// `Period@id`.
    id: String,
    /// `Period@start`, ms.
    start_ms: u64,
    /// `SegmentTemplate@presentationTimeOffset`, ms: the media time at `start_ms`.
    offset_ms: u64,
}

/// Whether `next` cannot follow `prev` in one Period: another codec config (a new init
/// section), or a start before `prev`'s end (a producer clock that went back). `gaps` also
/// cuts where `next` starts more than [`GAP_MS`] after `prev`'s end.
fn cut(prev: &Fragment, next: &Fragment, gaps: bool) -> bool {
    let end = prev.start_ms.saturating_add(prev.duration_ms);
    next.tracks != prev.tracks
        || next.start_ms.saturating_add(GAP_MS) < end
        || (gaps && next.start_ms > end.saturating_add(GAP_MS))
}

/// Splits the fragments into Periods.
///
/// Static (ON_DEMAND): a new Period at every [`cut`], gaps included, each starting where the
/// previous one ends: "KVS adjusts the media timeline in the manifest file to enable playback of
/// media with discontinuities" (model doc). Ids are the Periods' first fragment numbers.
///
/// Dynamic (LIVE, LIVE_REPLAY): one Period, the newest run after the last cut other than a gap,
/// at presentation time 0 with media time = presentation time, so it is the same Period on every
/// reload while the window slides (a Period's id and start must not change between updates,
/// ISO/IEC 23009-1 §5.4); gaps stay holes in its SegmentTimeline, which players jump. Its id
/// names its codec configs, so a codec change makes a new Period (docs/choices.md#dash-manifest-details).
fn periods<'a>(m: &Manifest<'a>) -> Vec<Period<'a>> {
    let all = m.fragments;
    if let Presentation::Dynamic { .. } = m.presentation {
        let begin = (1..all.len())
            .rev()
            .find(|&i| cut(&all[i - 1], &all[i], false))
            .unwrap_or(0);
        let run = &all[begin..];
        let Some(first) = run.first() else {
            return Vec::new();
        };
        let id = first
            .tracks
            .iter()
            .map(|(track, sequence)| format!("{track}.{sequence}"))
            .collect::<Vec<_>>()
            .join("-");
        return vec![Period {
            fragments: run,
            id,
            start_ms: 0,
            offset_ms: 0,
        }];
    }
    let mut out: Vec<Period<'a>> = Vec::new();
    let mut begin = 0;
    let mut start_ms = 0u64;
    for i in 1..=all.len() {
        if let (Some(prev), Some(next)) = (all.get(i - 1), all.get(i)) {
            if !cut(prev, next, true) {
                continue;
            }
        }
        let run = &all[begin..i];
        if let Some(first) = run.first() {
            out.push(Period {
                fragments: run,
                id: first.number.clone(),
                start_ms,
                offset_ms: first.start_ms,
            });
        }
        start_ms = start_ms.saturating_add(run_duration(run));
        begin = i;
    }
    out
}

/// A run's length: from its first start to its last fragment's end.
fn run_duration(run: &[Fragment]) -> u64 {
    match (run.first(), run.last()) {
        (Some(first), Some(last)) => last
            .start_ms
            .saturating_add(last.duration_ms)
            .saturating_sub(first.start_ms),
        _ => 0,
    }
}

/// `xs:duration` in seconds with milliseconds: `PT12.345S`, `PT0S`.
fn duration(ms: u64) -> String {
    let mut s = format!("PT{}.{:03}", ms / 1000, ms % 1000);
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    s.push('S');
    s
}

/// `FrameRateType` (`[0-9]+(/[0-9]+)?`, no decimals): `30`, `30000/1001`, `12500/1000`.
fn frame_rate(fps: f64) -> String {
    let ntsc = (fps * 1.001).round();
    if (fps - ntsc / 1.001).abs() < 0.001 && (fps - fps.round()).abs() > 0.001 {
        return format!("{}/1001", ntsc as u64 * 1000);
    }
    if (fps - fps.round()).abs() < 0.001 {
        return format!("{}", fps.round() as u64);
    }
    format!("{}/1000", (fps * 1000.0).round() as u64)
}

/// The query string of one track's resources (`&` escaped for XML).
fn query(token: &str, track: u64) -> String {
    format!("SessionToken={token}&amp;TrackNumber={track}")
}

/// The MPD text.
pub fn render(m: &Manifest) -> String {
    let runs = periods(m);
    let mut out = String::with_capacity(1024 + m.fragments.len() * 64);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = write!(
        out,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" xmlns:kvs=\"{KVS_NAMESPACE}\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011\""
    );
    let longest_ms = m.fragments.iter().map(|f| f.duration_ms).max().unwrap_or(0);
    // The presentation's end: the last Period's start plus its media span.
    let total_ms = runs.last().map_or(0, |p| {
        let media_end = p
            .fragments
            .last()
            .map_or(0, |f| f.start_ms.saturating_add(f.duration_ms));
        p.start_ms
            .saturating_add(media_end)
            .saturating_sub(p.offset_ms)
    });
    match m.presentation {
        Presentation::Static => {
            let _ = write!(
                out,
                " type=\"static\" mediaPresentationDuration=\"{}\"",
                duration(total_ms)
            );
        }
        Presentation::Dynamic {
            availability_start_ms,
            now_ms,
            ended,
        } => {
            let _ = write!(
                out,
                " type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\"",
                iso8601_ms(availability_start_ms),
                iso8601_ms(now_ms)
            );
            if ended {
                let _ = write!(out, " mediaPresentationDuration=\"{}\"", duration(total_ms));
            } else {
                // Refreshed every second, as AWS's LIVE manifests (model doc); the player may
                // stay three fragments behind the newest one and seek back over the window.
                let window_ms = total_ms.saturating_sub(
                    runs.first()
                        .and_then(|p| p.fragments.first())
                        .map_or(0, |f| f.start_ms),
                );
                let _ = write!(
                    out,
                    " minimumUpdatePeriod=\"PT1S\" timeShiftBufferDepth=\"{}\" \
                     suggestedPresentationDelay=\"{}\"",
                    duration(window_ms.max(longest_ms)),
                    duration(longest_ms.saturating_mul(3).min(window_ms).max(longest_ms))
                );
            }
        }
    }
    let _ = writeln!(
        out,
        " minBufferTime=\"{}\">",
        duration(longest_ms.max(1000))
    );
    for run in &runs {
        write_period(&mut out, m, run);
    }
    if let Presentation::Dynamic { now_ms, .. } = m.presentation {
        // The server's clock: players compute the live edge from it, not from their own.
        let _ = writeln!(
            out,
            "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" value=\"{}\"/>",
            iso8601_ms(now_ms)
        );
    }
    out.push_str("</MPD>\n");
    out
}

fn write_period(out: &mut String, m: &Manifest, run: &Period) {
    let Some(first) = run.fragments.first() else {
        return;
    };
    let _ = writeln!(
        out,
        "  <Period id=\"{}\" start=\"{}\">",
        run.id,
        duration(run.start_ms)
    );
    for &(track, sequence) in &first.tracks {
        let Some(info) = m
            .tracks
            .iter()
            .find(|t| t.track == track && t.sequence == sequence)
        else {
            continue;
        };
        let content = match info.media {
            TrackMedia::Video { .. } => "video",
            TrackMedia::Audio { .. } => "audio",
        };
        let _ = writeln!(
            out,
            "    <AdaptationSet id=\"{track}\" contentType=\"{content}\" mimeType=\"{content}/mp4\" \
             segmentAlignment=\"true\" startWithSAP=\"1\">"
        );
        let _ = write!(
            out,
            "      <Representation id=\"{track}\" codecs=\"{}\" bandwidth=\"{}\"",
            info.codecs, info.bandwidth
        );
        match info.media {
            TrackMedia::Video {
                width,
                height,
                frame_rate: fps,
            } => {
                let _ = write!(out, " width=\"{width}\" height=\"{height}\"");
                if let Some(fps) = fps.filter(|f| f.is_finite() && *f > 0.0) {
                    let _ = write!(out, " frameRate=\"{}\"", frame_rate(fps));
                }
                out.push_str(">\n");
            }
            TrackMedia::Audio {
                sample_rate,
                channels,
            } => {
                let _ = writeln!(out, " audioSamplingRate=\"{sample_rate}\">");
                let _ = writeln!(
                    out,
                    "        <AudioChannelConfiguration \
                     schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" \
                     value=\"{channels}\"/>"
                );
            }
        }
        let q = query(m.token, track);
        let _ = writeln!(
            out,
            "        <SegmentTemplate timescale=\"1000\" presentationTimeOffset=\"{}\" \
             initialization=\"getMP4InitFragment.mp4?{q}&amp;SequenceNumber={sequence}\" \
             media=\"getMP4MediaFragment.mp4?{q}&amp;FirstFragmentNumber={}&amp;Time=$Time$\">",
            run.offset_ms, first.number
        );
        out.push_str("          <SegmentTimeline>\n");
        for (i, f) in run.fragments.iter().enumerate() {
            // Each S lasts until the next starts when that is within GAP_MS of its end (no
            // holes from millisecond rounding); otherwise (the last one, a gap) its own length.
            let d = match run.fragments.get(i + 1) {
                Some(next) if !cut(f, next, true) => next.start_ms.saturating_sub(f.start_ms),
                _ => f.duration_ms,
            };
            let _ = write!(out, "            <S t=\"{}\" d=\"{d}\"", f.start_ms);
            if m.display_timestamp {
                let _ = write!(out, " kvs:ts=\"{}\"", iso8601_ms(f.timestamp_ms));
            }
            if m.display_fragment_number {
                let _ = write!(out, " kvs:fn=\"{}\"", f.number);
            }
            out.push_str("/>\n");
        }
        out.push_str("          </SegmentTimeline>\n");
        out.push_str("        </SegmentTemplate>\n");
        out.push_str("      </Representation>\n");
        out.push_str("    </AdaptationSet>\n");
    }
    out.push_str("  </Period>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(name: &str, actual: &str) {
        crate::hls::playlist::tests::golden_in("src/dash/testdata", name, actual);
    }

    fn number(i: u64) -> String {
        format!("{:047}", 176_958_363_593_100_000_000_u128 + u128::from(i))
    }

    fn frag(i: u64, start_ms: u64, duration_ms: u64, tracks: &[(u64, u32)]) -> Fragment {
        Fragment {
            number: number(i),
            start_ms,
            duration_ms,
            timestamp_ms: 1_769_583_635_931 + start_ms as i64,
            tracks: tracks.to_vec(),
        }
    }

    fn video(sequence: u32, width: u32) -> TrackInfo {
        TrackInfo {
            track: 1,
            sequence,
            codecs: "avc1.64001f".into(),
            media: TrackMedia::Video {
                width,
                height: 720,
                frame_rate: Some(30_000.0 / 1001.0),
            },
            bandwidth: 2_104_120,
        }
    }

    fn audio() -> TrackInfo {
        TrackInfo {
            track: 2,
            sequence: 0,
            codecs: "mp4a.40.2".into(),
            media: TrackMedia::Audio {
                sample_rate: 48_000,
                channels: 2,
            },
            bandwidth: 128_000,
        }
    }

    #[test]
    fn numbers_as_the_schema_types_want_them() {
        assert_eq!(duration(0), "PT0S");
        assert_eq!(duration(12_345), "PT12.345S");
        assert_eq!(duration(2_000), "PT2S");
        assert_eq!(duration(1_500), "PT1.5S");
        assert_eq!(frame_rate(30.0), "30");
        assert_eq!(frame_rate(30_000.0 / 1001.0), "30000/1001");
        assert_eq!(frame_rate(24_000.0 / 1001.0), "24000/1001");
        assert_eq!(frame_rate(12.5), "12500/1000");
        assert_eq!(frame_rate(25.0), "25");
    }

    /// ON_DEMAND of an audio/video stream with a 10 s hole and a resolution change: three
    /// Periods, closed up (each starts where the previous ends), each with its init section.
    #[test]
    fn on_demand_periods_at_gaps_and_codec_changes() {
        let av = [(1, 0), (2, 0)];
        let av2 = [(1, 1), (2, 0)];
        let fragments = [
            frag(0, 480, 2000, &av),
            frag(1, 2480, 2000, &av),
            // 30 ms late: the same Period, the previous S stretched to meet it.
            frag(2, 4510, 1990, &av),
            // 10 s hole.
            frag(3, 16_500, 2000, &av),
            // New SPS (1920 wide).
            frag(4, 18_500, 2000, &av2),
        ];
        let text = render(&Manifest {
            token: "TOKEN~",
            presentation: Presentation::Static,
            fragments: &fragments,
            tracks: &[video(0, 1280), video(1, 1920), audio()],
            display_timestamp: false,
            display_fragment_number: false,
        });
        golden("on_demand_av.mpd", &text);
        assert_eq!(text.matches("<Period ").count(), 3);
        assert!(
            text.contains("mediaPresentationDuration=\"PT10.02S\""),
            "{text}"
        );
    }

    /// LIVE with kvs:ts / kvs:fn: dynamic, one Period at 0 whose SegmentTimeline keeps the hole of
    /// a producer pause, UTCTiming.
    #[test]
    fn live_with_fragment_timestamps_and_numbers() {
        let v = [(1, 0)];
        let mut fragments = vec![
            frag(0, 120_000, 2000, &v),
            frag(1, 122_000, 2000, &v),
            // A producer pause: a hole in the timeline, the same Period.
            frag(2, 130_000, 2000, &v),
        ];
        let live = |fragments: &[Fragment]| {
            render(&Manifest {
                token: "TOKEN~",
                presentation: Presentation::Dynamic {
                    availability_start_ms: 1_769_583_515_931,
                    now_ms: 1_769_583_650_000,
                    ended: false,
                },
                fragments,
                tracks: &[video(0, 1280)],
                display_timestamp: true,
                display_fragment_number: true,
            })
        };
        let text = live(&fragments);
        golden("live_ts_fn.mpd", &text);
        assert_eq!(
            text.matches("<Period id=\"1.0\" start=\"PT0S\">").count(),
            1,
            "{text}"
        );
        assert!(text.contains("<S t=\"122000\" d=\"2000\""), "{text}");
        // The window slides: the same Period (id, start), the same S for the same fragment.
        let slid = live(&fragments[1..]);
        assert!(
            slid.contains("<Period id=\"1.0\" start=\"PT0S\">"),
            "{slid}"
        );
        assert!(slid.contains("<S t=\"130000\" d=\"2000\""), "{slid}");
        // The producer clock went back: the manifest keeps only the newest run.
        fragments.push(frag(3, 129_000, 2000, &v));
        let back = live(&fragments);
        assert_eq!(back.matches("<S ").count(), 1, "{back}");
        assert!(back.contains("<S t=\"129000\""), "{back}");
    }

    #[test]
    fn empty_and_audio_only() {
        let text = render(&Manifest {
            token: "T",
            presentation: Presentation::Static,
            fragments: &[],
            tracks: &[],
            display_timestamp: false,
            display_fragment_number: false,
        });
        assert!(!text.contains("<Period"), "{text}");
        let a = [(1, 0)];
        let mut only_audio = audio();
        only_audio.track = 1;
        let text = render(&Manifest {
            token: "T",
            presentation: Presentation::Dynamic {
                availability_start_ms: 0,
                now_ms: 10_000,
                ended: true,
            },
            fragments: &[frag(0, 0, 1000, &a)],
            tracks: &[only_audio],
            display_timestamp: false,
            display_fragment_number: false,
        });
        golden("live_replay_ended_audio.mpd", &text);
        assert!(!text.contains("minimumUpdatePeriod"), "{text}");
    }
}
