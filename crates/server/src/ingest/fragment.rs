//! Turns one Matroska Cluster into one archived fragment (docs/wire.md#putmedia-body: one Cluster is one
//! fragment). Pure: frames in, a [`PendingFragment`] or an ack error out.

use super::ack::AckError;
use bytes::Bytes;
use media::mkv::Frame;
use media::timeline::TrackClock;
use media::TrackNumber;
use store::{
    CodecConfigId, FragmentNumber, FragmentTrack, MediaLocation, NewFragment, PendingFragment,
    SampleEntry, StreamId, Timestamp,
};

/// Ingest limits (docs/wire.md#putmedia-limits).
#[derive(Clone, Copy, Debug)]
pub struct IngestLimits {
    pub max_fragment_bytes: u64,
    pub max_fragment_duration_ms: u64,
    pub max_tracks: usize,
    pub max_fragment_tags: usize,
    /// A PutMedia connection is closed after this long (docs/wire.md#putmedia-limits: 45 min, ErrorId 4003);
    /// producers reconnect.
    pub max_connection_duration: std::time::Duration,
    /// Fragments / bytes a connection may have awaiting commit before it stops reading its body.
    /// Generous enough that group commit can batch many fragments into one fsync.
    pub max_pending_fragments: usize,
    pub max_pending_bytes: u64,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_fragment_bytes: 50 * 1024 * 1024,
            max_fragment_duration_ms: 20_000,
            max_tracks: 3,
            max_fragment_tags: 10,
            max_connection_duration: std::time::Duration::from_secs(45 * 60),
            max_pending_fragments: 64,
            max_pending_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A track of the current Matroska segment, resolved to its codec-config row.
#[derive(Clone, Debug)]
pub struct TrackInfo {
    pub number: TrackNumber,
    pub is_video: bool,
    pub config: CodecConfigId,
    pub default_duration_ns: Option<u64>,
    /// How the track's samples are timed, from its codec private data; `None` when that does not
    /// decode (stored anyway, refused at playback), and the length falls back to the frames'.
    pub clock: Option<TrackClock>,
}

struct TrackBuf {
    info: TrackInfo,
    parts: Vec<Bytes>,
    samples: Vec<SampleEntry>,
    bytes: u64,
}

/// Identity and timing of a fragment, fixed when its Cluster starts.
#[derive(Clone, Copy, Debug)]
pub struct FragmentHeader {
    pub stream: StreamId,
    pub number: FragmentNumber,
    /// Cluster timecode as sent, in ms (echoed in acks).
    pub timecode_ms: i64,
    pub producer_timestamp: Timestamp,
    pub server_timestamp: Timestamp,
    pub timecode_scale_ns: u64,
}

/// The frames of one open Cluster.
pub struct FragmentBuilder {
    header: FragmentHeader,
    tracks: Vec<TrackBuf>,
    total_bytes: u64,
    tags: Vec<(String, String)>,
    limits: IngestLimits,
}

impl FragmentBuilder {
    pub fn new(
        header: FragmentHeader,
        tracks: &[TrackInfo],
        tags: Vec<(String, String)>,
        limits: IngestLimits,
    ) -> Self {
        FragmentBuilder {
            header,
            tracks: tracks
                .iter()
                .map(|info| TrackBuf {
                    info: info.clone(),
                    parts: Vec::new(),
                    samples: Vec::new(),
                    bytes: 0,
                })
                .collect(),
            total_bytes: 0,
            tags,
            limits,
        }
    }

    pub fn header(&self) -> &FragmentHeader {
        &self.header
    }

    /// Adds a frame; the data is kept as the slice the reader gave (no copy). Returns its sample
    /// entry.
    pub fn add_frame(&mut self, frame: Frame) -> Result<SampleEntry, AckError> {
        let scale = self.header.timecode_scale_ns as i64;
        let limits = self.limits;
        let track = self
            .tracks
            .iter_mut()
            .find(|t| t.info.number == frame.track)
            .ok_or(AckError::TrackNumberMismatch)?;
        // A fragment must be decodable on its own: its video starts with a key frame. Audio
        // frames need not carry the key-frame bit (docs/wire.md#putmedia-body).
        if track.info.is_video && track.samples.is_empty() && !frame.keyframe {
            return Err(AckError::InvalidMkvData);
        }
        let size = frame.data.len() as u64;
        if self.total_bytes + size > limits.max_fragment_bytes {
            return Err(AckError::MaxFragmentSize);
        }
        let pts_offset_ns = i64::from(frame.relative_timecode) * scale;
        if pts_offset_ns > 0 && pts_offset_ns as u64 > limits.max_fragment_duration_ms * 1_000_000 {
            return Err(AckError::MaxFragmentDuration);
        }
        let duration_ns = frame
            .duration
            .map(|ticks| ticks.saturating_mul(scale as u64))
            .or(track.info.default_duration_ns);
        let sample = SampleEntry {
            pts_offset_ns,
            duration_ns,
            size: u32::try_from(size).map_err(|_| AckError::MaxFragmentSize)?,
            keyframe: frame.keyframe,
        };
        track.samples.push(sample);
        track.bytes += size;
        track.parts.push(frame.data);
        self.total_bytes += size;
        Ok(sample)
    }

    /// Closes the fragment: each track's samples contiguous, in track order.
    pub fn finish(self) -> Result<PendingFragment, AckError> {
        if self.tracks.iter().any(|t| t.samples.is_empty()) {
            return Err(AckError::FramesMissingForTrack);
        }
        let duration_ns = fragment_duration_ns(&self.tracks);
        if duration_ns > self.limits.max_fragment_duration_ms * 1_000_000 {
            return Err(AckError::MaxFragmentDuration);
        }
        let length_ms = self
            .length_ms()
            .unwrap_or((duration_ns + 500_000) / 1_000_000);
        let mut parts = Vec::with_capacity(self.tracks.iter().map(|t| t.parts.len()).sum());
        let mut tracks = Vec::with_capacity(self.tracks.len());
        let mut offset = 0;
        for t in self.tracks {
            tracks.push(FragmentTrack {
                track: t.info.number,
                codec_config: t.info.config,
                data_offset: offset,
                data_len: t.bytes,
                samples: t.samples,
            });
            offset += t.bytes;
            parts.extend(t.parts);
        }
        let h = self.header;
        Ok(PendingFragment {
            parts,
            row: NewFragment {
                writer_epoch: None,
                begins_discontinuity: false,
                stream: h.stream,
                number: h.number,
                producer_timestamp: h.producer_timestamp,
                server_timestamp: h.server_timestamp,
                duration_ms: length_ms,
                cluster_timecode_ms: h.timecode_ms,
                tracks,
                tags: self.tags,
                media: MediaLocation {
                    segment: 0,
                    offset: 0,
                    len: offset,
                },
            },
        })
    }
}

impl FragmentBuilder {
    /// FragmentLengthInMilliseconds: track 1's span, by the same `media::timeline` rule as its
    /// EXTINF (docs/choices.md#fragment-length).
    fn length_ms(&self) -> Option<u64> {
        let track_one = self.tracks.iter().min_by_key(|t| t.info.number)?;
        let clock = track_one.info.clock?;
        let start_ns = u64::try_from(self.header.producer_timestamp.millis())
            .ok()?
            .checked_mul(1_000_000)?;
        media::timeline::fragment_length_ms(start_ns, &track_one.samples, clock).ok()
    }
}

/// The limit check's span: from the fragment's start (its Cluster timecode, which is its producer timestamp, or an earlier
/// frame) to the end of its latest frame over all tracks, so consecutive fragments tile the
/// timeline. A track's last frame lasts its BlockDuration / DefaultDuration, else the track's last
/// PTS step.
fn fragment_duration_ns(tracks: &[TrackBuf]) -> u64 {
    let mut start = 0i64;
    let mut end = 0i64;
    for t in tracks {
        let mut pts: Vec<i64> = t.samples.iter().map(|s| s.pts_offset_ns).collect();
        pts.sort_unstable();
        let (Some(&first), Some(&last)) = (pts.first(), pts.last()) else {
            continue;
        };
        let step = t
            .samples
            .iter()
            .find(|s| s.pts_offset_ns == last)
            .and_then(|s| s.duration_ns)
            .map(|d| d as i64)
            .or_else(|| pts.windows(2).rev().map(|w| w[1] - w[0]).find(|d| *d > 0))
            .unwrap_or(0);
        start = start.min(first);
        end = end.max(last.saturating_add(step));
    }
    u64::try_from(end.saturating_sub(start)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> FragmentHeader {
        FragmentHeader {
            stream: StreamId(1),
            number: FragmentNumber(7),
            timecode_ms: 1000,
            producer_timestamp: Timestamp(1000),
            server_timestamp: Timestamp(2000),
            timecode_scale_ns: 1_000_000,
        }
    }

    fn tracks() -> Vec<TrackInfo> {
        vec![
            TrackInfo {
                number: TrackNumber(1),
                is_video: true,
                config: CodecConfigId(1),
                default_duration_ns: None,
                clock: None,
            },
            TrackInfo {
                number: TrackNumber(2),
                is_video: false,
                config: CodecConfigId(2),
                default_duration_ns: None,
                clock: None,
            },
        ]
    }

    fn frame(track: u64, tc: i16, key: bool, data: &'static [u8]) -> Frame {
        Frame {
            track: TrackNumber(track),
            relative_timecode: tc,
            keyframe: key,
            duration: None,
            data: Bytes::from_static(data),
            offset: 0,
        }
    }

    #[test]
    fn tracks_become_contiguous_in_track_order_and_bytes_are_unchanged() {
        let mut b = FragmentBuilder::new(header(), &tracks(), vec![], IngestLimits::default());
        b.add_frame(frame(1, 0, true, b"V0")).unwrap();
        b.add_frame(frame(2, 0, false, b"a0")).unwrap();
        b.add_frame(frame(1, 33, false, b"V1x")).unwrap();
        b.add_frame(frame(2, 21, false, b"a1")).unwrap();
        let f = b.finish().unwrap();
        let bytes: Vec<u8> = f.parts.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(bytes, b"V0V1xa0a1");
        assert_eq!(f.row.tracks[0].data_offset, 0);
        assert_eq!(f.row.tracks[0].data_len, 5);
        assert_eq!(f.row.tracks[1].data_offset, 5);
        assert_eq!(f.row.tracks[0].samples[1].pts_offset_ns, 33_000_000);
        assert_eq!(f.row.media.len, 9);
        // Video 0..33 + one 33 ms step = 66 ms; audio 0..21 + 21 = 42 ms.
        assert_eq!(f.row.duration_ms, 66);
    }

    /// FragmentLengthInMilliseconds is track 1's span, as its EXTINF: audio running past the last
    /// video frame (into the next fragment's time) does not lengthen it, so fragments that start at
    /// their key frames tile (docs/choices.md#fragment-length).
    #[test]
    fn length_is_track_ones_span_even_when_audio_overhangs() {
        let mut tracks = tracks();
        tracks[0].clock = Some(TrackClock::Video);
        tracks[1].clock = Some(TrackClock::Audio {
            sample_rate: 48_000,
            frame_length: 1024,
        });
        let mut b = FragmentBuilder::new(header(), &tracks, vec![], IngestLimits::default());
        for i in 0..30i16 {
            b.add_frame(frame(1, (i * 1000 + 15) / 30, i == 0, b"v"))
                .unwrap();
        }
        for i in 0..49i16 {
            b.add_frame(frame(2, i * 21, true, b"a")).unwrap(); // to 1008 + 21 ms
        }
        let f = b.finish().unwrap();
        assert_eq!(f.row.duration_ms, 1000);

        // Audio only: track 1 is the AAC track, timed by its frame length (49 x 1024 / 48 kHz).
        let mut audio = tracks[1].clone();
        audio.number = TrackNumber(1);
        let mut b = FragmentBuilder::new(header(), &[audio], vec![], IngestLimits::default());
        for i in 0..49i16 {
            b.add_frame(frame(1, i * 21, true, b"a")).unwrap();
        }
        assert_eq!(b.finish().unwrap().row.duration_ms, 1045);
    }

    #[test]
    fn rule_violations_give_the_documented_errors() {
        let mut b = FragmentBuilder::new(header(), &tracks(), vec![], IngestLimits::default());
        assert_eq!(
            b.add_frame(frame(3, 0, true, b"x")),
            Err(AckError::TrackNumberMismatch)
        );
        assert_eq!(
            b.add_frame(frame(1, 0, false, b"x")),
            Err(AckError::InvalidMkvData),
            "video must start on a key frame"
        );
        b.add_frame(frame(1, 0, true, b"x")).unwrap();
        assert_eq!(
            b.add_frame(frame(1, 20_001, false, b"x")),
            Err(AckError::MaxFragmentDuration)
        );
        assert_eq!(b.finish().err(), Some(AckError::FramesMissingForTrack));

        let limits = IngestLimits {
            max_fragment_bytes: 4,
            ..Default::default()
        };
        let mut b = FragmentBuilder::new(header(), &tracks(), vec![], limits);
        b.add_frame(frame(1, 0, true, b"1234")).unwrap();
        assert_eq!(
            b.add_frame(frame(2, 0, false, b"5")),
            Err(AckError::MaxFragmentSize)
        );
    }
}
