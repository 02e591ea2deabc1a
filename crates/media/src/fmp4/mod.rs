//! Fragmented MP4 (ISO/IEC 14496-12) for HLS: one track per init / media segment pair, as each
//! HLS media playlist has its own `EXT-X-MAP`.
//!
//! Init segment ([`init_segment`]):
//! ```text
//! ftyp                      major iso5, compatible iso5 iso6 mp41
//! moov
//! ├── mvhd                  timescale, next_track_ID 2
//! ├── trak
//! │   ├── tkhd              track_ID 1, enabled|in_movie, width/height (video)
//! │   └── mdia
//! │       ├── mdhd          timescale, language und
//! │       ├── hdlr          vide | soun
//! │       └── minf
//! │           ├── vmhd | smhd
//! │           ├── dinf
//! │           │   └── dref
//! │           │       └── url       self-contained
//! │           └── stbl
//! │               ├── stsd
//! │               │   └── avc1 + avcC | hvc1 + hvcC | mp4a + esds
//! │               ├── stts, stsc, stsz, stco   (empty: samples live in fragments)
//! └── mvex
//!     └── trex              track_ID 1, default sample description 1
//! ```
//! Media segment ([`media_segment_header`], then the stored sample bytes):
//! ```text
//! moof
//! ├── mfhd                  sequence_number
//! └── traf
//!     ├── tfhd              track_ID 1, default-base-is-moof
//!     ├── tfdt (v1)         baseMediaDecodeTime
//!     └── trun (v0 | v1)    data_offset, per sample: duration, size, flags, [composition offset; signed in v1]
//! mdat                      header only (8 bytes, or 16 with a 64-bit largesize)
//! ```
//! Brands: `iso5` (major; default-base-is-moof, ISO/IEC 14496-12 §8.8.7.1 / Annex E) with `iso6`
//! (`tfdt`) and `mp41`, exactly what ffmpeg's HLS muxer (`-hls_segment_type fmp4`) writes, which
//! hls.js, Safari/AVPlayer and ExoPlayer all play. `cmfc` is not claimed: these segments are not
//! checked against every CMAF constraint.
//!
//! Every box is written into one growable buffer by `crate::isobmff::write_box`: a zero size and
//! the type, the body from a closure, then the size patched in with a checked conversion. The
//! `trak` and its sample entry are `crate::isobmff`'s, shared with the progressive MP4 writer.

use crate::codec::CodecError;
use crate::isobmff::{
    check_codec, mdat_header_len, put_mdat_header, put_u32, put_u64, write_box, write_ftyp,
    write_full_box, write_mvhd, write_trak, CodecOrRange, OutOfRange, TrakHeader, BOX_HEADER_LEN,
};
use crate::timeline::TrackTiming;
use thiserror::Error;

/// Bumped whenever the bytes written for the same inputs change; part of every ETag / cache key.
/// The golden-bytes digests in `tests/fmp4.rs` are pinned to this version.
pub const FORMAT_VERSION: u32 = 1;

/// The only track of every init / media segment pair.
pub const TRACK_ID: u32 = 1;

/// `ftyp` major_brand.
const MAJOR_BRAND: &[u8; 4] = b"iso5";
/// `ftyp` minor_version (as ffmpeg writes).
const MINOR_VERSION: u32 = 512;
/// `ftyp` compatible_brands.
const COMPATIBLE_BRANDS: [&[u8; 4]; 3] = [b"iso5", b"iso6", b"mp41"];

/// `tfhd` flags: default-base-is-moof (§8.8.7.1).
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x020000;
/// `trun` flags: data-offset-present.
const TRUN_DATA_OFFSET_PRESENT: u32 = 0x000001;
/// `trun` flags: sample-duration-present.
const TRUN_SAMPLE_DURATION_PRESENT: u32 = 0x000100;
/// `trun` flags: sample-size-present.
const TRUN_SAMPLE_SIZE_PRESENT: u32 = 0x000200;
/// `trun` flags: sample-flags-present.
const TRUN_SAMPLE_FLAGS_PRESENT: u32 = 0x000400;
/// `trun` flags: sample-composition-time-offsets-present.
const TRUN_SAMPLE_COMPOSITION_TIME_OFFSETS_PRESENT: u32 = 0x000800;
/// Sample flags (§8.8.3.1): `sample_depends_on` = 2 (does not depend on others: an I picture).
const SAMPLE_DEPENDS_ON_NONE: u32 = 2 << 24;
/// Sample flags: `sample_depends_on` = 1 (depends on others).
const SAMPLE_DEPENDS_ON_OTHERS: u32 = 1 << 24;
/// Sample flags: `sample_is_non_sync_sample`.
const SAMPLE_IS_NON_SYNC: u32 = 1 << 16;
/// Flags of a sync sample.
pub const SYNC_SAMPLE_FLAGS: u32 = SAMPLE_DEPENDS_ON_NONE;
/// Flags of a non-sync sample.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = SAMPLE_DEPENDS_ON_OTHERS | SAMPLE_IS_NON_SYNC;

/// The codec configuration of the init segment's only track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitTrack<'a> {
    /// H.264: the AVCDecoderConfigurationRecord (Matroska CodecPrivate) and the picture size.
    Avc {
        /// The `avcC` body.
        avcc: &'a [u8],
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// H.265: the HEVCDecoderConfigurationRecord and the picture size.
    Hevc {
        /// The `hvcC` body.
        hvcc: &'a [u8],
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// AAC: the AudioSpecificConfig.
    Aac {
        /// The DecoderSpecificInfo.
        asc: &'a [u8],
        /// Sampling rate in Hz.
        sample_rate: u32,
        /// Channel count.
        channels: u32,
    },
}

/// Why a segment cannot be written.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Fmp4Error {
    /// The codec private data does not parse.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A value does not fit its field.
    #[error("{0} out of range")]
    OutOfRange(&'static str),
    /// A media segment needs at least one sample.
    #[error("no samples")]
    NoSamples,
}

impl From<OutOfRange> for Fmp4Error {
    fn from(e: OutOfRange) -> Self {
        Fmp4Error::OutOfRange(e.0)
    }
}

impl From<CodecOrRange> for Fmp4Error {
    fn from(e: CodecOrRange) -> Self {
        match e {
            CodecOrRange::Codec(e) => Fmp4Error::Codec(e),
            CodecOrRange::Range(e) => e.into(),
        }
    }
}

/// The `ftyp` + `moov` of a one-track fragmented MP4 whose media timescale is `timescale`
/// (90 000 for video, the sample rate for AAC). The codec private data is checked with
/// [`crate::codec`] and copied verbatim into `avcC` / `hvcC` / the DecoderSpecificInfo.
pub fn init_segment(track: &InitTrack<'_>, timescale: u32) -> Result<Vec<u8>, Fmp4Error> {
    if timescale == 0 {
        return Err(Fmp4Error::OutOfRange("timescale"));
    }
    let picture_size = check_codec(track)?;
    let mut buf = Vec::with_capacity(1024);
    write_ftyp(&mut buf, MAJOR_BRAND, MINOR_VERSION, &COMPATIBLE_BRANDS)?;
    write_box(&mut buf, b"moov", |buf| {
        write_mvhd(buf, timescale, 0, TRACK_ID + 1)?; // duration unknown: fragmented
        let header = TrakHeader {
            track_id: TRACK_ID,
            codec: track,
            picture_size,
            timescale,
            movie_duration: 0,
            media_duration: 0,
            edits: &[],
        };
        write_trak(buf, &header, |buf| {
            // Empty sample tables: the samples live in the fragments.
            write_full_box(buf, b"stts", 0, 0, no_entries)?; // entry_count
            write_full_box(buf, b"stsc", 0, 0, no_entries)?; // entry_count
            write_full_box(buf, b"stsz", 0, 0, |buf| {
                put_u32(buf, 0); // sample_size
                put_u32(buf, 0); // sample_count
                Ok(())
            })?;
            write_full_box(buf, b"stco", 0, 0, no_entries) // entry_count
        })?;
        write_box(buf, b"mvex", |buf| {
            write_full_box(buf, b"trex", 0, 0, |buf| {
                put_u32(buf, TRACK_ID); // track_ID
                put_u32(buf, 1); // default_sample_description_index
                put_u32(buf, 0); // default_sample_duration
                put_u32(buf, 0); // default_sample_size
                put_u32(buf, 0); // default_sample_flags
                Ok(())
            })
        })
    })?;
    Ok(buf)
}

/// The body of an empty sample table (`stts`, `stsc`, `stco`): `entry_count` = 0.
fn no_entries(buf: &mut Vec<u8>) -> Result<(), OutOfRange> {
    put_u32(buf, 0); // entry_count
    Ok(())
}

/// Whether the `trun` carries composition offsets: only when one is non-zero (video with
/// B-frames); audio and I/P-only video leave them out.
fn has_composition_offsets(timing: &TrackTiming) -> bool {
    timing.samples.iter().any(|s| s.composition_offset != 0)
}

/// Bytes per `trun` sample entry.
fn trun_entry_len(timing: &TrackTiming) -> u64 {
    if has_composition_offsets(timing) {
        16
    } else {
        12
    }
}

/// Length of the `moof` box, from the sample count alone.
fn moof_len(timing: &TrackTiming) -> u64 {
    let n = timing.samples.len() as u64;
    let mfhd = 16; // header 8 + version/flags 4 + sequence_number 4
    let tfhd = 16; // header 8 + version/flags 4 + track_ID 4
    let tfdt = 20; // header 8 + version/flags 4 + baseMediaDecodeTime 8
    let trun = 20 + n * trun_entry_len(timing); // header 8 + v/f 4 + sample_count 4 + data_offset 4
    BOX_HEADER_LEN + mfhd + BOX_HEADER_LEN + tfhd + tfdt + trun
}

/// Bytes of a whole media segment: `moof` + `mdat` header + the sample data. Known before any
/// byte is written (for `Content-Length`).
pub fn media_segment_len(timing: &TrackTiming) -> u64 {
    let data = timing.data_len();
    moof_len(timing) + mdat_header_len(data) + data
}

/// The `moof` and the `mdat` header of one fragment of one track. The caller sends these bytes
/// and then each sample's stored bytes in decode order (AVCC length-prefixed NAL units / raw
/// AAC frames), so the total is [`media_segment_len`].
pub fn media_segment_header(
    sequence_number: u32,
    timing: &TrackTiming,
) -> Result<Vec<u8>, Fmp4Error> {
    if timing.samples.is_empty() {
        return Err(Fmp4Error::NoSamples);
    }
    let sample_count =
        u32::try_from(timing.samples.len()).map_err(|_| Fmp4Error::OutOfRange("sample_count"))?;
    let data_len = timing.data_len();
    let header_len = moof_len(timing) + mdat_header_len(data_len);
    let data_offset =
        i32::try_from(header_len).map_err(|_| Fmp4Error::OutOfRange("data_offset"))?;
    let offsets = has_composition_offsets(timing);
    let mut trun_flags = TRUN_DATA_OFFSET_PRESENT
        | TRUN_SAMPLE_DURATION_PRESENT
        | TRUN_SAMPLE_SIZE_PRESENT
        | TRUN_SAMPLE_FLAGS_PRESENT;
    if offsets {
        trun_flags |= TRUN_SAMPLE_COMPOSITION_TIME_OFFSETS_PRESENT;
    }

    let capacity =
        usize::try_from(header_len).map_err(|_| Fmp4Error::OutOfRange("header length"))?;
    let mut buf = Vec::with_capacity(capacity);
    write_box(&mut buf, b"moof", |buf| {
        write_full_box(buf, b"mfhd", 0, 0, |buf| {
            put_u32(buf, sequence_number); // sequence_number
            Ok(())
        })?;
        write_box(buf, b"traf", |buf| {
            write_full_box(buf, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, |buf| {
                put_u32(buf, TRACK_ID); // track_ID
                Ok(())
            })?;
            write_full_box(buf, b"tfdt", 1, 0, |buf| {
                put_u64(buf, timing.base_decode_time); // baseMediaDecodeTime
                Ok(())
            })?;
            // Version 1 (signed composition offsets) only when an offset is negative: the
            // timeline puts decode times at presentation times (ISO/IEC 14496-12 §8.8.8).
            let version = u8::from(timing.samples.iter().any(|s| s.composition_offset < 0));
            write_full_box(buf, b"trun", version, trun_flags, |buf| {
                put_u32(buf, sample_count); // sample_count
                put_u32(buf, data_offset as u32); // data_offset (i32, ≥ 0: from the moof start to the first sample)
                for sample in &timing.samples {
                    put_u32(buf, sample.duration); // sample_duration
                    put_u32(buf, sample.size); // sample_size
                    put_u32(
                        buf,
                        if sample.sync {
                            SYNC_SAMPLE_FLAGS
                        } else {
                            NON_SYNC_SAMPLE_FLAGS
                        },
                    ); // sample_flags
                    if offsets {
                        // sample_composition_time_offset: u32 in version 0, i32 in version 1.
                        put_u32(buf, sample.composition_offset as u32);
                    }
                }
                Ok(())
            })
        })
    })?;
    put_mdat_header(&mut buf, data_len);
    debug_assert_eq!(buf.len() as u64, header_len);
    Ok(buf)
}
