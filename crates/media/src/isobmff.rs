//! ISO base media file format (ISO/IEC 14496-12) box writing shared by the fragmented MP4
//! writer ([`crate::fmp4`], HLS) and the progressive MP4 writer ([`crate::mp4`], GetClip): box
//! framing with backpatched sizes, `ftyp`, `mvhd`, and a whole `trak` around the caller's sample
//! tables, with the codec's sample entry (`avc1`/`hvc1`/`mp4a`) built from the codec private data.
//!
//! Every helper appends to one growable buffer; sizes are patched in with checked conversions.
//! The only error is [`OutOfRange`]: a value does not fit its field; each writer maps it into
//! its own error type.

use crate::codec::{AacConfig, AvcConfig, CodecError, HevcConfig};
use crate::fmp4::InitTrack;

/// A value does not fit its field; the name says which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OutOfRange(pub(crate) &'static str);

/// `tkhd` flags: track_enabled.
const TKHD_TRACK_ENABLED: u32 = 0x000001;
/// `tkhd` flags: track_in_movie.
const TKHD_TRACK_IN_MOVIE: u32 = 0x000002;
/// `vmhd` flags: always 1 (ISO/IEC 14496-12 §12.1.2.2).
const VMHD_FLAGS: u32 = 0x000001;
/// `url ` flags: media data is in the same file.
const URL_SELF_CONTAINED: u32 = 0x000001;
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
pub(crate) const BOX_HEADER_LEN: u64 = 8;
/// Bytes of a box header with a 64-bit largesize (`size` = 1).
pub(crate) const LARGE_BOX_HEADER_LEN: u64 = 16;

/// Appends a box: size placeholder, type, body from `body`, then the size patched in.
pub(crate) fn write_box<F>(buf: &mut Vec<u8>, box_type: &[u8; 4], body: F) -> Result<(), OutOfRange>
where
    F: FnOnce(&mut Vec<u8>) -> Result<(), OutOfRange>,
{
    let start = buf.len();
    buf.extend_from_slice(&0u32.to_be_bytes()); // size (patched below)
    buf.extend_from_slice(box_type); // type
    body(buf)?;
    let size = u32::try_from(buf.len() - start).map_err(|_| OutOfRange("box size"))?;
    buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Appends a full box: [`write_box`] with `version` and 24-bit `flags` first.
pub(crate) fn write_full_box<F>(
    buf: &mut Vec<u8>,
    box_type: &[u8; 4],
    version: u8,
    flags: u32,
    body: F,
) -> Result<(), OutOfRange>
where
    F: FnOnce(&mut Vec<u8>) -> Result<(), OutOfRange>,
{
    write_box(buf, box_type, |buf| {
        buf.push(version); // version
        buf.extend_from_slice(&flags.to_be_bytes()[1..]); // flags
        body(buf)
    })
}

/// Appends the header of an `mdat` holding `data_len` bytes: 8 bytes, or 16 with a 64-bit
/// largesize when the box would not fit a 32-bit size (§4.2).
pub(crate) fn put_mdat_header(buf: &mut Vec<u8>, data_len: u64) {
    match u32::try_from(data_len + BOX_HEADER_LEN) {
        Ok(size) => {
            put_u32(buf, size); // size
            buf.extend_from_slice(b"mdat"); // type
        }
        Err(_) => {
            put_u32(buf, 1); // size = 1: largesize follows
            buf.extend_from_slice(b"mdat"); // type
            put_u64(buf, data_len + LARGE_BOX_HEADER_LEN); // largesize
        }
    }
}

/// Length of [`put_mdat_header`]'s output for `data_len` bytes.
pub(crate) fn mdat_header_len(data_len: u64) -> u64 {
    if data_len + BOX_HEADER_LEN > u64::from(u32::MAX) {
        LARGE_BOX_HEADER_LEN
    } else {
        BOX_HEADER_LEN
    }
}

/// Appends an MPEG-4 descriptor (ISO/IEC 14496-1 §8.3.3): tag, a 4-byte expandable size
/// (patched), then the body. Four bytes always, as ffmpeg writes, so the size is patchable.
fn write_descriptor<F>(buf: &mut Vec<u8>, tag: u8, body: F) -> Result<(), OutOfRange>
where
    F: FnOnce(&mut Vec<u8>) -> Result<(), OutOfRange>,
{
    buf.push(tag); // tag
    let start = buf.len();
    buf.extend_from_slice(&[0x80, 0x80, 0x80, 0x00]); // sizeOfInstance (patched below)
    body(buf)?;
    let size = buf.len() - start - 4;
    if size >= 1 << 28 {
        return Err(OutOfRange("descriptor size"));
    }
    for (i, shift) in [21, 14, 7, 0].into_iter().enumerate() {
        let more = if shift == 0 { 0 } else { 0x80 }; // nextByte
        buf[start + i] = more | ((size >> shift) & 0x7f) as u8; // sizeOfInstance, 7 bits
    }
    Ok(())
}

pub(crate) fn put_u16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_zeros(buf: &mut Vec<u8>, n: usize) {
    buf.resize(buf.len() + n, 0);
}

/// Appends the `ftyp` box.
pub(crate) fn write_ftyp(
    buf: &mut Vec<u8>,
    major_brand: &[u8; 4],
    minor_version: u32,
    compatible_brands: &[&[u8; 4]],
) -> Result<(), OutOfRange> {
    write_box(buf, b"ftyp", |buf| {
        buf.extend_from_slice(major_brand); // major_brand
        put_u32(buf, minor_version); // minor_version
        for brand in compatible_brands {
            buf.extend_from_slice(*brand); // compatible_brands[]
        }
        Ok(())
    })
}

/// Version 0 (32-bit times) when `duration` fits, else version 1 (64-bit), for `mvhd`, `tkhd`
/// and `mdhd` (§8.2.2, §8.3.2, §8.4.2).
fn time_box_version(duration: u64) -> u8 {
    u8::from(u32::try_from(duration).is_err())
}

/// Appends creation_time, modification_time (both 0: unknown), timescale and duration of
/// `mvhd` / `mdhd`, 32-bit in version 0 and 64-bit in version 1.
fn put_times(buf: &mut Vec<u8>, version: u8, timescale: u32, duration: u64) {
    if version == 1 {
        put_u64(buf, 0); // creation_time
        put_u64(buf, 0); // modification_time
        put_u32(buf, timescale); // timescale
        put_u64(buf, duration); // duration
    } else {
        put_u32(buf, 0); // creation_time
        put_u32(buf, 0); // modification_time
        put_u32(buf, timescale); // timescale
        put_u32(buf, duration as u32); // duration (fits: version 0)
    }
}

/// Appends the `mvhd` box (§8.2.2): `duration` in `timescale` units, 0 when unknown.
pub(crate) fn write_mvhd(
    buf: &mut Vec<u8>,
    timescale: u32,
    duration: u64,
    next_track_id: u32,
) -> Result<(), OutOfRange> {
    let version = time_box_version(duration);
    write_full_box(buf, b"mvhd", version, 0, |buf| {
        put_times(buf, version, timescale, duration);
        put_u32(buf, 0x0001_0000); // rate 1.0
        put_u16(buf, 0x0100); // volume 1.0
        put_zeros(buf, 2 + 4 * 2); // reserved
        UNITY_MATRIX.iter().for_each(|&m| put_u32(buf, m)); // matrix
        put_zeros(buf, 4 * 6); // pre_defined
        put_u32(buf, next_track_id); // next_track_ID
        Ok(())
    })
}

/// One entry of an edit list (`elst`, §8.6.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Edit {
    /// segment_duration, in the movie timescale.
    pub(crate) segment_duration: u64,
    /// media_time, in the track's timescale; −1 for an empty edit (nothing shown).
    pub(crate) media_time: i64,
}

/// What `trak` needs besides its sample tables.
pub(crate) struct TrakHeader<'a> {
    pub(crate) track_id: u32,
    pub(crate) codec: &'a InitTrack<'a>,
    /// Width and height as [`check_codec`] returned them.
    pub(crate) picture_size: (u16, u16),
    /// The track's media timescale (`mdhd`).
    pub(crate) timescale: u32,
    /// `tkhd` duration in the movie timescale (the sum of the edits; 0 when unknown).
    pub(crate) movie_duration: u64,
    /// `mdhd` duration in the media timescale (the sum of the sample durations; 0 when unknown).
    pub(crate) media_duration: u64,
    /// The edit list; none written when empty.
    pub(crate) edits: &'a [Edit],
}

/// Checks the codec private data and returns the picture size as the sample entry and `tkhd`
/// carry it (0×0 for audio).
pub(crate) fn check_codec(track: &InitTrack<'_>) -> Result<(u16, u16), CodecOrRange> {
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
    match *track {
        InitTrack::Avc { width, height, .. } | InitTrack::Hevc { width, height, .. } => {
            let w = u16::try_from(width).map_err(|_| OutOfRange("width"))?;
            let h = u16::try_from(height).map_err(|_| OutOfRange("height"))?;
            Ok((w, h))
        }
        InitTrack::Aac { .. } => Ok((0, 0)),
    }
}

/// Why [`check_codec`] refused a track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CodecOrRange {
    Codec(CodecError),
    Range(OutOfRange),
}

impl From<CodecError> for CodecOrRange {
    fn from(e: CodecError) -> Self {
        CodecOrRange::Codec(e)
    }
}

impl From<OutOfRange> for CodecOrRange {
    fn from(e: OutOfRange) -> Self {
        CodecOrRange::Range(e)
    }
}

/// Appends a whole `trak` (§8.3.1): `tkhd`, the edit list if any, and `mdia` with `mdhd`,
/// `hdlr`, `minf` (`vmhd`/`smhd`, `dinf`, and `stbl` = `stsd` with the codec's sample entry
/// followed by what `sample_tables` writes). The codec must have passed [`check_codec`].
pub(crate) fn write_trak<F>(
    buf: &mut Vec<u8>,
    header: &TrakHeader<'_>,
    sample_tables: F,
) -> Result<(), OutOfRange>
where
    F: FnOnce(&mut Vec<u8>) -> Result<(), OutOfRange>,
{
    let track = header.codec;
    let is_video = !matches!(track, InitTrack::Aac { .. });
    let (width, height) = header.picture_size;
    write_box(buf, b"trak", |buf| {
        let version = time_box_version(header.movie_duration);
        write_full_box(
            buf,
            b"tkhd",
            version,
            TKHD_TRACK_ENABLED | TKHD_TRACK_IN_MOVIE,
            |buf| {
                if version == 1 {
                    put_u64(buf, 0); // creation_time
                    put_u64(buf, 0); // modification_time
                    put_u32(buf, header.track_id); // track_ID
                    put_u32(buf, 0); // reserved
                    put_u64(buf, header.movie_duration); // duration
                } else {
                    put_u32(buf, 0); // creation_time
                    put_u32(buf, 0); // modification_time
                    put_u32(buf, header.track_id); // track_ID
                    put_u32(buf, 0); // reserved
                    put_u32(buf, header.movie_duration as u32); // duration (fits: version 0)
                }
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
        if !header.edits.is_empty() {
            write_edit_list(buf, header.edits)?;
        }
        write_box(buf, b"mdia", |buf| {
            let version = time_box_version(header.media_duration);
            write_full_box(buf, b"mdhd", version, 0, |buf| {
                put_times(buf, version, header.timescale, header.media_duration);
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
                    sample_tables(buf)
                })
            })
        })
    })
}

/// Appends `edts` with its `elst` (§8.6.5, §8.6.6): version 1 when a value needs 64 bits.
fn write_edit_list(buf: &mut Vec<u8>, edits: &[Edit]) -> Result<(), OutOfRange> {
    let entry_count = u32::try_from(edits.len()).map_err(|_| OutOfRange("elst entry_count"))?;
    let wide = edits.iter().any(|e| {
        u32::try_from(e.segment_duration).is_err() || i32::try_from(e.media_time).is_err()
    });
    write_box(buf, b"edts", |buf| {
        write_full_box(buf, b"elst", u8::from(wide), 0, |buf| {
            put_u32(buf, entry_count); // entry_count
            for edit in edits {
                if wide {
                    put_u64(buf, edit.segment_duration); // segment_duration
                    put_u64(buf, edit.media_time as u64); // media_time (int64)
                } else {
                    put_u32(buf, edit.segment_duration as u32); // segment_duration (fits)
                    put_u32(buf, edit.media_time as i32 as u32); // media_time (int32, fits)
                }
                put_u16(buf, 1); // media_rate_integer
                put_u16(buf, 0); // media_rate_fraction
            }
            Ok(())
        })
    })
}

/// The `stsd` entry: `avc1`/`hvc1` (VisualSampleEntry, §12.1.3) or `mp4a` (AudioSampleEntry,
/// §12.2.3 and ISO/IEC 14496-14 §6.7).
fn write_sample_entry(
    buf: &mut Vec<u8>,
    track: &InitTrack<'_>,
    width: u16,
    height: u16,
) -> Result<(), OutOfRange> {
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
            let channels = u16::try_from(channels).map_err(|_| OutOfRange("channels"))?;
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
