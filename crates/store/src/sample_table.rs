//! Compact encoding of a fragment's per-track sample tables, stored in the catalog row.
//!
//! Varints with deltas, as moonfire's sample index (`db/recording.rs`): a 1-second 30 fps fragment
//! with audio takes ~300 bytes instead of kilobytes of JSON.
//!
//! Layout: `version=1`, `track_count`, then per track: `track`, `codec_config`, `data_offset`,
//! `data_len`, `sample_count`, and per sample: `zigzag(pts_offset_ns - previous pts_offset_ns)`,
//! `duration_ns + 1` (0 = none), `size << 1 | keyframe`.

use crate::{CodecConfigId, FragmentTrack, SampleEntry, StoreError};
use media::TrackNumber;

const FORMAT_VERSION: u64 = 1;
/// Bound on decoded counts so a corrupt row cannot make us allocate without limit.
const MAX_ENTRIES: u64 = 10_000_000;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

pub(crate) fn encode(tracks: &[FragmentTrack]) -> Vec<u8> {
    let samples: usize = tracks.iter().map(|t| t.samples.len()).sum();
    let mut out = Vec::with_capacity(8 + tracks.len() * 16 + samples * 6);
    put_varint(&mut out, FORMAT_VERSION);
    put_varint(&mut out, tracks.len() as u64);
    for t in tracks {
        put_varint(&mut out, t.track.0);
        put_varint(&mut out, t.codec_config.0 as u64);
        put_varint(&mut out, t.data_offset);
        put_varint(&mut out, t.data_len);
        put_varint(&mut out, t.samples.len() as u64);
        let mut prev = 0i64;
        for s in &t.samples {
            put_varint(&mut out, zigzag(s.pts_offset_ns.wrapping_sub(prev)));
            prev = s.pts_offset_ns;
            put_varint(&mut out, s.duration_ns.map_or(0, |d| d.saturating_add(1)));
            put_varint(&mut out, (u64::from(s.size) << 1) | u64::from(s.keyframe));
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
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or_else(|| {
                StoreError::Corrupt(format!("sample table truncated at byte {}", self.pos))
            })?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(StoreError::Corrupt(format!(
            "sample table varint too long at byte {}",
            self.pos
        )))
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
