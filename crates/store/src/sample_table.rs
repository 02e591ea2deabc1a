//! Compact encoding of a fragment's per-track sample tables, stored in the catalog row.
//!
//! Varints with deltas, as moonfire's sample index (`db/recording.rs`): a 1-second 30 fps fragment
//! with audio takes ~300 bytes instead of kilobytes of JSON.
//!
//! Layout: `version=1`, `track_count`, then per track: `track`, `codec_config`, `data_offset`,
//! `data_len`, `sample_count`, and per sample: `zigzag(pts_offset_ns - previous pts_offset_ns)`,
//! `duration_ns + 1` (0 = none), `size << 1 | keyframe`.

use crate::varint::{self, unzigzag, zigzag, VarintError};
use crate::{CodecConfigId, FragmentTrack, SampleEntry, StoreError, TrackSummary};
use media::timeline::{TrackSpan, VideoSpan};
use media::TrackNumber;

const FORMAT_VERSION: u64 = 1;
/// Bound on decoded counts so a corrupt row cannot make us allocate without limit.
const MAX_ENTRIES: u64 = 10_000_000;

pub(crate) fn encode(tracks: &[FragmentTrack]) -> Vec<u8> {
    let samples: usize = tracks.iter().map(|t| t.samples.len()).sum();
    let mut out = Vec::with_capacity(8 + tracks.len() * 16 + samples * 6);
    varint::put_u64(&mut out, FORMAT_VERSION);
    varint::put_u64(&mut out, tracks.len() as u64);
    for t in tracks {
        varint::put_u64(&mut out, t.track.0);
        varint::put_u64(&mut out, t.codec_config.0 as u64);
        varint::put_u64(&mut out, t.data_offset);
        varint::put_u64(&mut out, t.data_len);
        varint::put_u64(&mut out, t.samples.len() as u64);
        let mut prev = 0i64;
        for s in &t.samples {
            varint::put_u64(&mut out, zigzag(s.pts_offset_ns.wrapping_sub(prev)));
            prev = s.pts_offset_ns;
            varint::put_u64(&mut out, s.duration_ns.map_or(0, |d| d.saturating_add(1)));
            varint::put_u64(&mut out, (u64::from(s.size) << 1) | u64::from(s.keyframe));
        }
    }
    out
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn varint(&mut self) -> Result<u64, StoreError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let (value, len) = varint::read_u64(rest).map_err(|e| {
            StoreError::Corrupt(match e {
                VarintError::Truncated => {
                    format!("sample table truncated at byte {}", self.buf.len())
                }
                VarintError::TooLong => {
                    format!("sample table varint too long at byte {}", self.pos)
                }
            })
        })?;
        self.pos += len;
        Ok(value)
    }

    fn count(&mut self) -> Result<usize, StoreError> {
        let n = self.varint()?;
        if n > MAX_ENTRIES {
            return Err(StoreError::Corrupt(format!(
                "sample table count {n} too large"
            )));
        }
        Ok(n as usize)
    }
}

pub(crate) fn decode(buf: &[u8]) -> Result<Vec<FragmentTrack>, StoreError> {
    let mut c = Cursor { buf, pos: 0 };
    let version = c.varint()?;
    if version != FORMAT_VERSION {
        return Err(StoreError::Corrupt(format!(
            "sample table version {version}"
        )));
    }
    let n_tracks = c.count()?;
    let mut tracks = Vec::with_capacity(n_tracks.min(16));
    for _ in 0..n_tracks {
        let track = TrackNumber(c.varint()?);
        let codec_config = CodecConfigId(c.varint()? as i64);
        let data_offset = c.varint()?;
        let data_len = c.varint()?;
        let n = c.count()?;
        let mut samples = Vec::with_capacity(n.min(buf.len()));
        let mut pts = 0i64;
        for _ in 0..n {
            pts = pts.wrapping_add(unzigzag(c.varint()?));
            let d = c.varint()?;
            let sk = c.varint()?;
            let size = u32::try_from(sk >> 1)
                .map_err(|_| StoreError::Corrupt(format!("sample size {} too large", sk >> 1)))?;
            samples.push(SampleEntry {
                pts_offset_ns: pts,
                duration_ns: d.checked_sub(1),
                size,
                keyframe: sk & 1 == 1,
            });
        }
        tracks.push(FragmentTrack {
            track,
            codec_config,
            data_offset,
            data_len,
            samples,
        });
    }
    if c.pos != buf.len() {
        return Err(StoreError::Corrupt(format!(
            "{} trailing bytes in sample table",
            buf.len() - c.pos
        )));
    }
    Ok(tracks)
}

/// Version of the track-summary encoding (the `summary` column): `version=1`, `track_count`,
/// then per track: `track`, `codec_config`, `sample_count`, `zigzag(first_pts_offset_ns)`,
/// `zigzag(min_pts_offset_ns)`, `0` (no video span) or `1, duration, zigzag(base_offset)`.
const SUMMARY_VERSION: u64 = 1;

/// The summaries of `tracks` (their [`TrackSpan`]s), encoded: what listing queries read instead
/// of the sample tables.
pub(crate) fn encode_summaries(tracks: &[FragmentTrack]) -> Vec<u8> {
    let summaries: Vec<TrackSummary> = tracks.iter().map(FragmentTrack::summary).collect();
    encode_summary_list(&summaries)
}

pub(crate) fn encode_summary_list(tracks: &[TrackSummary]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + tracks.len() * 24);
    varint::put_u64(&mut out, SUMMARY_VERSION);
    varint::put_u64(&mut out, tracks.len() as u64);
    for t in tracks {
        varint::put_u64(&mut out, t.track.0);
        varint::put_u64(&mut out, t.codec_config.0 as u64);
        varint::put_u64(&mut out, t.span.samples);
        varint::put_u64(&mut out, zigzag(t.span.first_pts_offset_ns));
        varint::put_u64(&mut out, zigzag(t.span.min_pts_offset_ns));
        match t.span.video {
            None => varint::put_u64(&mut out, 0),
            Some(v) => {
                varint::put_u64(&mut out, 1);
                varint::put_u64(&mut out, v.duration);
                varint::put_u64(&mut out, zigzag(v.base_offset));
            }
        }
    }
    out
}

pub(crate) fn decode_summaries(buf: &[u8]) -> Result<Vec<TrackSummary>, StoreError> {
    let mut c = Cursor { buf, pos: 0 };
    let version = c.varint()?;
    if version != SUMMARY_VERSION {
        return Err(StoreError::Corrupt(format!(
            "track summary version {version}"
        )));
    }
    let n_tracks = c.count()?;
    let mut tracks = Vec::with_capacity(n_tracks.min(16));
    for _ in 0..n_tracks {
        let track = TrackNumber(c.varint()?);
        let codec_config = CodecConfigId(c.varint()? as i64);
        let samples = c.varint()?;
        let first_pts_offset_ns = unzigzag(c.varint()?);
        let min_pts_offset_ns = unzigzag(c.varint()?);
        let video = match c.varint()? {
            0 => None,
            1 => Some(VideoSpan {
                duration: c.varint()?,
                base_offset: unzigzag(c.varint()?),
            }),
            other => {
                return Err(StoreError::Corrupt(format!(
                    "track summary video tag {other}"
                )))
            }
        };
        tracks.push(TrackSummary {
            track,
            codec_config,
            span: TrackSpan {
                samples,
                first_pts_offset_ns,
                min_pts_offset_ns,
                video,
            },
        });
    }
    if c.pos != buf.len() {
        return Err(StoreError::Corrupt(format!(
            "{} trailing bytes in track summary",
            buf.len() - c.pos
        )));
    }
    Ok(tracks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let tracks = vec![
            FragmentTrack {
                track: TrackNumber(1),
                codec_config: CodecConfigId(7),
                data_offset: 0,
                data_len: 30,
                samples: vec![
                    SampleEntry {
                        pts_offset_ns: 0,
                        duration_ns: None,
                        size: 10,
                        keyframe: true,
                    },
                    SampleEntry {
                        pts_offset_ns: 66_000_000,
                        duration_ns: Some(33_000_000),
                        size: 10,
                        keyframe: false,
                    },
                    SampleEntry {
                        pts_offset_ns: 33_000_000,
                        duration_ns: Some(0),
                        size: 10,
                        keyframe: false,
                    },
                ],
            },
            FragmentTrack {
                track: TrackNumber(2),
                codec_config: CodecConfigId(8),
                data_offset: 30,
                data_len: 4,
                samples: vec![SampleEntry {
                    pts_offset_ns: -5,
                    duration_ns: None,
                    size: 4,
                    keyframe: false,
                }],
            },
        ];
        let enc = encode(&tracks);
        assert_eq!(decode(&enc).unwrap(), tracks);
        let summaries: Vec<TrackSummary> = tracks.iter().map(FragmentTrack::summary).collect();
        assert!(summaries[0].span.video.is_some());
        let enc = encode_summaries(&tracks);
        assert_eq!(decode_summaries(&enc).unwrap(), summaries);
        for cut in 0..enc.len() {
            assert!(decode_summaries(&enc[..cut]).is_err());
        }
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        let enc = encode(&[FragmentTrack {
            track: TrackNumber(1),
            codec_config: CodecConfigId(1),
            data_offset: 0,
            data_len: 1,
            samples: vec![SampleEntry {
                pts_offset_ns: 1,
                duration_ns: None,
                size: 1,
                keyframe: true,
            }],
        }]);
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut]).is_err());
        }
        assert!(
            decode(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err()
        );
    }
}
