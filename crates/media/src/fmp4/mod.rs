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
//! Every box is written into one growable buffer by `write_box`: a zero size and the type,
//! the body from a closure, then the size patched in with a checked conversion.

use crate::codec::{AacConfig, AvcConfig, CodecError, HevcConfig};
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

/// `tkhd` flags: track_enabled.
const TKHD_TRACK_ENABLED: u32 = 0x000001;
/// `tkhd` flags: track_in_movie.
const TKHD_TRACK_IN_MOVIE: u32 = 0x000002;
/// `vmhd` flags: always 1 (ISO/IEC 14496-12 §12.1.2.2).
const VMHD_FLAGS: u32 = 0x000001;
/// `url ` flags: media data is in the same file.
const URL_SELF_CONTAINED: u32 = 0x000001;
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
/// The unity transformation matrix of `mvhd` / `tkhd` (16.16 and 2.30 fixed point).
const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];
/// `mdhd` language `und`, packed ISO-639-2/T (three 5-bit letters − 0x60).
const LANGUAGE_UND: u16 =
    ((b'u' - 0x60) as u16) << 10 | ((b'n' - 0x60) as u16) << 5 | (b'd' - 0x60) as u16;
/// 72 dpi in 16.16 fixed point (`horizresolution` / `vertresolution`).
const RESOLUTION_72_DPI: u32 = 0x0048_0000;
/// `depth` of a colour sample entry without alpha.
const DEPTH_COLOUR: u16 = 0x0018;
/// ES_Descriptor tag (ISO/IEC 14496-1 §7.2.2.1 Table 1).
const ES_DESCR_TAG: u8 = 0x03;
/// DecoderConfigDescriptor tag.
const DECODER_CONFIG_DESCR_TAG: u8 = 0x04;
/// DecoderSpecificInfo tag.
const DEC_SPECIFIC_INFO_TAG: u8 = 0x05;
/// SLConfigDescriptor tag.
const SL_CONFIG_DESCR_TAG: u8 = 0x06;
/// objectTypeIndication: Audio ISO/IEC 14496-3 (AAC).
const OBJECT_TYPE_AUDIO_14496_3: u8 = 0x40;
/// streamType AudioStream (0x05) << 2 | upStream 0 << 1 | reserved 1.
const STREAM_TYPE_AUDIO_BYTE: u8 = 0x05 << 2 | 0x01;
/// SLConfigDescriptor predefined = 2 (reserved for MP4 files).
const SL_PREDEFINED_MP4: u8 = 0x02;
/// Bytes of a box header with a 32-bit size.
const BOX_HEADER_LEN: u64 = 8;
/// Bytes of an `mdat` header with a 64-bit largesize.
const LARGE_BOX_HEADER_LEN: u64 = 16;

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

/// Appends a box: size placeholder, type, body from `body`, then the size patched in.
fn write_box<F>(buf: &mut Vec<u8>, box_type: &[u8; 4], body: F) -> Result<(), Fmp4Error>
where
    F: FnOnce(&mut Vec<u8>) -> Result<(), Fmp4Error>,
{
    let start = buf.len();
    buf.extend_from_slice(&0u32.to_be_bytes()); // size (patched below)
    buf.extend_from_slice(box_type); // type
    body(buf)?;
    let size = u32::try_from(buf.len() - start).map_err(|_| Fmp4Error::OutOfRange("box size"))?;
    buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Appends a full box: [`write_box`] with `version` and 24-bit `flags` first.
fn write_full_box<F>(
    buf: &mut Vec<u8>,
    box_type: &[u8; 4],
    version: u8,
    flags: u32,
    body: F,
) -> Result<(), Fmp4Error>
where
    F: FnOnce(&mut Vec<u8>) -> Result<(), Fmp4Error>,
{
    write_box(buf, box_type, |buf| {
        buf.push(version); // version
        buf.extend_from_slice(&flags.to_be_bytes()[1..]); // flags
        body(buf)
    })
}

/// Appends an MPEG-4 descriptor (ISO/IEC 14496-1 §8.3.3): tag, a 4-byte expandable size
/// (patched), then the body. Four bytes always, as ffmpeg writes, so the size is patchable.
fn write_descriptor<F>(buf: &mut Vec<u8>, tag: u8, body: F) -> Result<(), Fmp4Error>
where
    F: FnOnce(&mut Vec<u8>) -> Result<(), Fmp4Error>,
{
    buf.push(tag); // tag
    let start = buf.len();
    buf.extend_from_slice(&[0x80, 0x80, 0x80, 0x00]); // sizeOfInstance (patched below)
    body(buf)?;
    let size = buf.len() - start - 4;
    if size >= 1 << 28 {
        return Err(Fmp4Error::OutOfRange("descriptor size"));
    }
    for (i, shift) in [21, 14, 7, 0].into_iter().enumerate() {
        let more = if shift == 0 { 0 } else { 0x80 }; // nextByte
        buf[start + i] = more | ((size >> shift) & 0x7f) as u8; // sizeOfInstance, 7 bits
    }
    Ok(())
}

/// The body of an empty sample table (`stts`, `stsc`, `stco`): `entry_count` = 0.
fn no_entries(buf: &mut Vec<u8>) -> Result<(), Fmp4Error> {
    put_u32(buf, 0); // entry_count
    Ok(())
}

fn put_u16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_be_bytes());
}

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_be_bytes());
}

fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_be_bytes());
}

fn put_zeros(buf: &mut Vec<u8>, n: usize) {
    buf.resize(buf.len() + n, 0);
}

/// The `ftyp` + `moov` of a one-track fragmented MP4 whose media timescale is `timescale`
/// (90 000 for video, the sample rate for AAC). The codec private data is checked with
/// [`crate::codec`] and copied verbatim into `avcC` / `hvcC` / the DecoderSpecificInfo.
pub fn init_segment(track: &InitTrack<'_>, timescale: u32) -> Result<Vec<u8>, Fmp4Error> {
    if timescale == 0 {
        return Err(Fmp4Error::OutOfRange("timescale"));
    }
    match track {
        InitTrack::Avc { avcc, .. } => {
            AvcConfig::parse(avcc)?;
        }
        InitTrack::Hevc { hvcc, .. } => {
            HevcConfig::parse(hvcc)?;
        }
        InitTrack::Aac { asc, .. } => {
            AacConfig::parse(asc)?;
        }
    }
    let (width, height) = match *track {
        InitTrack::Avc { width, height, .. } | InitTrack::Hevc { width, height, .. } => {
            let w = u16::try_from(width).map_err(|_| Fmp4Error::OutOfRange("width"))?;
            let h = u16::try_from(height).map_err(|_| Fmp4Error::OutOfRange("height"))?;
            (w, h)
        }
        InitTrack::Aac { .. } => (0, 0),
    };
    let is_video = !matches!(track, InitTrack::Aac { .. });

    let mut buf = Vec::with_capacity(1024);
    write_box(&mut buf, b"ftyp", |buf| {
        buf.extend_from_slice(MAJOR_BRAND); // major_brand
        put_u32(buf, MINOR_VERSION); // minor_version
        for brand in COMPATIBLE_BRANDS {
            buf.extend_from_slice(brand); // compatible_brands[]
        }
        Ok(())
    })?;
    write_box(&mut buf, b"moov", |buf| {
        write_full_box(buf, b"mvhd", 0, 0, |buf| {
            put_u32(buf, 0); // creation_time
            put_u32(buf, 0); // modification_time
            put_u32(buf, timescale); // timescale
            put_u32(buf, 0); // duration (unknown: fragmented)
            put_u32(buf, 0x0001_0000); // rate 1.0
            put_u16(buf, 0x0100); // volume 1.0
            put_zeros(buf, 2 + 4 * 2); // reserved
            UNITY_MATRIX.iter().for_each(|&m| put_u32(buf, m)); // matrix
            put_zeros(buf, 4 * 6); // pre_defined
            put_u32(buf, TRACK_ID + 1); // next_track_ID
            Ok(())
        })?;
        write_box(buf, b"trak", |buf| {
            write_full_box(
                buf,
                b"tkhd",
                0,
                TKHD_TRACK_ENABLED | TKHD_TRACK_IN_MOVIE,
                |buf| {
                    put_u32(buf, 0); // creation_time
                    put_u32(buf, 0); // modification_time
                    put_u32(buf, TRACK_ID); // track_ID
                    put_u32(buf, 0); // reserved
                    put_u32(buf, 0); // duration
                    put_zeros(buf, 4 * 2); // reserved
                    put_u16(buf, 0); // layer
                    put_u16(buf, 0); // alternate_group
                    put_u16(buf, if is_video { 0 } else { 0x0100 }); // volume
                    put_u16(buf, 0); // reserved
                    UNITY_MATRIX.iter().for_each(|&m| put_u32(buf, m)); // matrix
                    put_u32(buf, u32::from(width) << 16); // width, 16.16
                    put_u32(buf, u32::from(height) << 16); // height, 16.16
                    Ok(())
                },
            )?;
            write_box(buf, b"mdia", |buf| {
                write_full_box(buf, b"mdhd", 0, 0, |buf| {
                    put_u32(buf, 0); // creation_time
                    put_u32(buf, 0); // modification_time
                    put_u32(buf, timescale); // timescale
                    put_u32(buf, 0); // duration
                    put_u16(buf, LANGUAGE_UND); // pad + language
                    put_u16(buf, 0); // pre_defined
                    Ok(())
                })?;
                write_full_box(buf, b"hdlr", 0, 0, |buf| {
                    put_u32(buf, 0); // pre_defined
                    buf.extend_from_slice(if is_video { b"vide" } else { b"soun" }); // handler_type
                    put_zeros(buf, 4 * 3); // reserved
                    let name: &[u8] = if is_video {
                        b"VideoHandler\0"
                    } else {
                        b"SoundHandler\0"
                    };
                    buf.extend_from_slice(name); // name, null-terminated
                    Ok(())
                })?;
                write_box(buf, b"minf", |buf| {
                    if is_video {
                        write_full_box(buf, b"vmhd", 0, VMHD_FLAGS, |buf| {
                            put_u16(buf, 0); // graphicsmode (copy)
                            put_zeros(buf, 2 * 3); // opcolor
                            Ok(())
                        })?;
                    } else {
                        write_full_box(buf, b"smhd", 0, 0, |buf| {
                            put_u16(buf, 0); // balance
                            put_u16(buf, 0); // reserved
                            Ok(())
                        })?;
                    }
                    write_box(buf, b"dinf", |buf| {
                        write_full_box(buf, b"dref", 0, 0, |buf| {
                            put_u32(buf, 1); // entry_count
                            write_full_box(buf, b"url ", 0, URL_SELF_CONTAINED, |_| Ok(()))
                        })
                    })?;
                    write_box(buf, b"stbl", |buf| {
                        write_full_box(buf, b"stsd", 0, 0, |buf| {
                            put_u32(buf, 1); // entry_count
                            write_sample_entry(buf, track, width, height)
                        })?;
                        write_full_box(buf, b"stts", 0, 0, no_entries)?; // entry_count
                        write_full_box(buf, b"stsc", 0, 0, no_entries)?; // entry_count
                        write_full_box(buf, b"stsz", 0, 0, |buf| {
                            put_u32(buf, 0); // sample_size
                            put_u32(buf, 0); // sample_count
                            Ok(())
                        })?;
                        write_full_box(buf, b"stco", 0, 0, no_entries)
                        // entry_count
                    })
                })
            })
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

/// The `stsd` entry: `avc1`/`hvc1` (VisualSampleEntry, §12.1.3) or `mp4a` (AudioSampleEntry,
/// §12.2.3 and ISO/IEC 14496-14 §6.7).
fn write_sample_entry(
    buf: &mut Vec<u8>,
    track: &InitTrack<'_>,
    width: u16,
    height: u16,
) -> Result<(), Fmp4Error> {
    let visual = |buf: &mut Vec<u8>, config_type: &[u8; 4], config: &[u8]| {
        put_zeros(buf, 6); // reserved
        put_u16(buf, 1); // data_reference_index
        put_u16(buf, 0); // pre_defined
        put_u16(buf, 0); // reserved
        put_zeros(buf, 4 * 3); // pre_defined
        put_u16(buf, width); // width
        put_u16(buf, height); // height
        put_u32(buf, RESOLUTION_72_DPI); // horizresolution
        put_u32(buf, RESOLUTION_72_DPI); // vertresolution
        put_u32(buf, 0); // reserved
        put_u16(buf, 1); // frame_count
        put_zeros(buf, 32); // compressorname (empty Pascal string)
        put_u16(buf, DEPTH_COLOUR); // depth
        put_u16(buf, 0xffff); // pre_defined = -1
        write_box(buf, config_type, |buf| {
            buf.extend_from_slice(config); // the decoder configuration record, verbatim
            Ok(())
        })
    };
    match *track {
        InitTrack::Avc { avcc, .. } => write_box(buf, b"avc1", |buf| visual(buf, b"avcC", avcc)),
        InitTrack::Hevc { hvcc, .. } => write_box(buf, b"hvc1", |buf| visual(buf, b"hvcC", hvcc)),
        InitTrack::Aac {
            asc,
            sample_rate,
            channels,
        } => {
            let channels =
                u16::try_from(channels).map_err(|_| Fmp4Error::OutOfRange("channels"))?;
            write_box(buf, b"mp4a", |buf| {
                put_zeros(buf, 6); // reserved
                put_u16(buf, 1); // data_reference_index
                put_zeros(buf, 4 * 2); // reserved
                put_u16(buf, channels); // channelcount
                put_u16(buf, 16); // samplesize
                put_u16(buf, 0); // pre_defined
                put_u16(buf, 0); // reserved
                                 // samplerate, 16.16; rates above 65535 Hz do not fit and are written as 0 (the
                                 // decoder takes the rate from the AudioSpecificConfig).
                put_u32(
                    buf,
                    if sample_rate <= 0xffff {
                        sample_rate << 16
                    } else {
                        0
                    },
                );
                write_full_box(buf, b"esds", 0, 0, |buf| {
                    write_descriptor(buf, ES_DESCR_TAG, |buf| {
                        put_u16(buf, 0); // ES_ID
                        buf.push(0); // streamDependenceFlag, URL_Flag, OCRstreamFlag, streamPriority
                        write_descriptor(buf, DECODER_CONFIG_DESCR_TAG, |buf| {
                            buf.push(OBJECT_TYPE_AUDIO_14496_3); // objectTypeIndication
                            buf.push(STREAM_TYPE_AUDIO_BYTE); // streamType, upStream, reserved
                            buf.extend_from_slice(&[0, 0, 0]); // bufferSizeDB (unknown)
                            put_u32(buf, 0); // maxBitrate (unknown)
                            put_u32(buf, 0); // avgBitrate (variable)
                            write_descriptor(buf, DEC_SPECIFIC_INFO_TAG, |buf| {
                                buf.extend_from_slice(asc); // AudioSpecificConfig, verbatim
                                Ok(())
                            })
                        })?;
                        write_descriptor(buf, SL_CONFIG_DESCR_TAG, |buf| {
                            buf.push(SL_PREDEFINED_MP4); // predefined
                            Ok(())
                        })
                    })
                })
            })
        }
    }
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

/// Length of the `mdat` header for `data_len` bytes of samples.
fn mdat_header_len(data_len: u64) -> u64 {
    if data_len + BOX_HEADER_LEN > u64::from(u32::MAX) {
        LARGE_BOX_HEADER_LEN
    } else {
        BOX_HEADER_LEN
    }
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
    if mdat_header_len(data_len) == LARGE_BOX_HEADER_LEN {
        put_u32(&mut buf, 1); // size = 1: largesize follows
        buf.extend_from_slice(b"mdat"); // type
        put_u64(&mut buf, data_len + LARGE_BOX_HEADER_LEN); // largesize
    } else {
        // data_len + 8 ≤ u32::MAX, checked by mdat_header_len.
        put_u32(&mut buf, (data_len + BOX_HEADER_LEN) as u32); // size
        buf.extend_from_slice(b"mdat"); // type
    }
    debug_assert_eq!(buf.len() as u64, header_len);
    Ok(buf)
}
