//! MPEG-2 transport stream segments (ISO/IEC 13818-1) for HLS `ContainerFormat=MPEG_TS`: one
//! stored fragment, all its tracks (H.264 and/or AAC) muxed into one self-contained segment.
//!
//! Segment layout ([`mux_segment`]):
//! ```text
//! PAT        PID 0x0000  program 1 → PMT PID 0x1000                      (1 packet)
//! PMT        PID 0x1000  PCR PID; H.264 0x1B on 0x0100, AAC/ADTS 0x0F on 0x0101 (1 packet)
//! PES …      one per video access unit (PID 0x0100, stream_id 0xE0):
//!              AUD, [SPS, PPS from the avcC before key frames], the NAL units, Annex B start codes
//!            one per run of AAC frames (PID 0x0101, stream_id 0xC0): ADTS header + raw frame, …
//! ```
//! PES packets follow each other in decode-time order (90 kHz), except that the PCR track's first
//! PES comes first so the segment opens with a PCR. Choices, each made once here:
//!
//! - **Timestamps**: PTS/DTS are the [`TrackTiming`] times (the session timeline, so they run on
//!   across fragments exactly as `tfdt` does in fMP4), converted to 90 kHz by rounding the absolute
//!   time, written modulo 2^33. DTS is written only when it differs from PTS (B-frames).
//! - **PCR** (§2.4.3.5) on the video PID (the audio PID when audio-only), in the first packet of
//!   the PCR track's first PES and then at most every [`PCR_INTERVAL_90K`] of decode time. Its
//!   value is the decode time of the PES it rides on (the segment's earliest decode time for the
//!   first), so no PES decodes before the clock reaches it and the PCR never goes below zero.
//! - **Continuity counters** start at 0 on every PID of every segment: a segment is fetched
//!   alone, so nothing else is deterministic. The first packet of each elementary-stream PID
//!   sets `discontinuity_indicator` (§2.4.3.5), which tells demuxers reading segments back to
//!   back (ffmpeg's HLS reader, GStreamer) that the counter jump is intended; on the PCR PID it
//!   also allows the PCR to restart (audio of a fragment may start before the previous
//!   fragment's last video frame). PAT and PMT are one packet each and set it too.
//! - **AAC**: frames are packed into one PES while the PES stays within
//!   [`AUDIO_PES_MAX_DURATION_90K`] and 16-bit `PES_packet_length`, which removes most per-PES
//!   overhead (stuffing of the last packet, PES header) without delaying audio much. Measured
//!   on the fixtures (TS bytes over fMP4 bytes, h264_aac / aac_only): one frame per PES +16.5 % /
//!   +42 %; 100 ms +10.3 / +14.2 %; 250 ms +8.6 / +6.8 %; 500 ms +8.1 / +4.2 %; 1 s +7.9 / +4.2 %.
//! - **H.264**: every access unit starts with an access unit delimiter (NAL type 9); AUDs found in
//!   the sample are dropped. Key frames get the avcC's SPS and PPS in front unless the sample
//!   carries both itself. 4-byte start codes before the AUD, SPS, PPS (and subset SPS), where
//!   Annex B requires `zero_byte`; 3-byte ones elsewhere.
//! - **Stuffing**: only the last packet of a PES, through its adaptation field (§2.4.3.4). PSI
//!   packets are filled with 0xFF after the section (§2.4.4).
//!
//! The whole segment is written into one buffer whose exact length is computed first (a
//! planning pass walks the NAL units and frames); packets are framed in place, nothing is
//! allocated per packet or per sample.

use crate::codec::aac::{OBJECT_TYPE_PS, OBJECT_TYPE_SBR, SAMPLING_FREQUENCIES};
use crate::codec::{AacConfig, AvcConfig};
use crate::timeline::TrackTiming;
use thiserror::Error;

/// Bumped whenever the bytes written for the same inputs change; part of every ETag / cache key.
/// The golden-bytes digests in `tests/ts.rs` are pinned to this version.
pub const FORMAT_VERSION: u32 = 1;

/// Bytes of a transport stream packet.
pub const PACKET_LEN: usize = 188;
/// Bytes of a packet after its 4-byte header.
const PACKET_PAYLOAD_LEN: usize = 184;
/// `sync_byte`.
pub const SYNC_BYTE: u8 = 0x47;
/// PID of the program association table.
pub const PID_PAT: u16 = 0x0000;
/// PID of the program map table (ffmpeg's default).
pub const PID_PMT: u16 = 0x1000;
/// PID of the H.264 elementary stream.
pub const PID_VIDEO: u16 = 0x0100;
/// PID of the AAC elementary stream.
pub const PID_AUDIO: u16 = 0x0101;
/// `transport_stream_id` of the PAT.
const TRANSPORT_STREAM_ID: u16 = 1;
/// `program_number` of the only program.
const PROGRAM_NUMBER: u16 = 1;
/// `table_id` of a program_association_section.
const TABLE_ID_PAT: u8 = 0x00;
/// `table_id` of a TS_program_map_section.
const TABLE_ID_PMT: u8 = 0x02;
/// `stream_type` AVC video (ITU-T H.264 | ISO/IEC 14496-10), Table 2-34.
pub const STREAM_TYPE_H264: u8 = 0x1b;
/// `stream_type` ISO/IEC 13818-7 audio with ADTS transport syntax.
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;
/// PES `stream_id` of the first video stream (Table 2-22).
const STREAM_ID_VIDEO: u8 = 0xe0;
/// PES `stream_id` of the first audio stream.
const STREAM_ID_AUDIO: u8 = 0xc0;

/// Header byte 1: `payload_unit_start_indicator`.
const PAYLOAD_UNIT_START: u8 = 0x40;
/// Header byte 3: `adaptation_field_control` '01', payload only.
const AFC_PAYLOAD_ONLY: u8 = 0x10;
/// Header byte 3: `adaptation_field_control` '11', adaptation field then payload.
const AFC_ADAPTATION_AND_PAYLOAD: u8 = 0x30;
/// Adaptation field flags: `discontinuity_indicator`.
const AF_DISCONTINUITY: u8 = 0x80;
/// Adaptation field flags: `random_access_indicator`.
const AF_RANDOM_ACCESS: u8 = 0x40;
/// Adaptation field flags: `PCR_flag`.
const AF_PCR: u8 = 0x10;
/// Bytes of `program_clock_reference_base` + reserved + `_extension`.
const PCR_LEN: usize = 6;
/// Adaptation field stuffing and PSI padding.
const STUFFING_BYTE: u8 = 0xff;

/// Section byte 1 high nibble: `section_syntax_indicator` 1, '0', reserved '11'.
const SECTION_SYNTAX: u8 = 0xb0;
/// reserved '11', `version_number` 0, `current_next_indicator` 1.
const VERSION_CURRENT: u8 = 0xc1;
/// Reserved bits above a 13-bit PID.
const RESERVED_PID_BITS: u16 = 0xe000;
/// Reserved bits above a 12-bit length.
const RESERVED_LENGTH_BITS: u16 = 0xf000;
/// Bytes of `CRC_32`.
const CRC_LEN: usize = 4;

/// `packet_start_code_prefix`.
const PES_START_CODE: [u8; 3] = [0x00, 0x00, 0x01];
/// PES flags byte 1: '10', not scrambled, no priority, `data_alignment_indicator` 1 (every PES
/// starts with an access unit: an AUD or an ADTS sync word), not copyrighted, copy.
const PES_FLAGS_ALIGNED: u8 = 0x84;
/// PES flags byte 2: `PTS_DTS_flags` '10'.
const PES_PTS_ONLY: u8 = 0x80;
/// PES flags byte 2: `PTS_DTS_flags` '11'.
const PES_PTS_DTS: u8 = 0xc0;
/// Prefix nibble of a PTS written alone.
const PTS_ONLY_PREFIX: u8 = 0x2;
/// Prefix nibble of a PTS followed by a DTS.
const PTS_WITH_DTS_PREFIX: u8 = 0x3;
/// Prefix nibble of a DTS.
const DTS_PREFIX: u8 = 0x1;
/// Bytes of one encoded PTS or DTS.
const TIMESTAMP_LEN: usize = 5;
/// Bytes of the PES header before the optional fields: start code, stream_id, length, 2 flag
/// bytes, `PES_header_data_length`.
const PES_FIXED_HEADER_LEN: usize = 9;
/// Bytes counted by `PES_packet_length` before the optional fields (flags and header length).
const PES_LENGTH_FIELD_BASE: usize = 3;
/// Largest `PES_packet_length`.
const PES_MAX_PACKET_LENGTH: usize = 0xffff;

/// The MPEG system clock for PTS, DTS and the PCR base.
pub const MPEG_TIMESCALE: u32 = 90_000;
/// PTS, DTS and PCR base are 33-bit counters.
const TIMESTAMP_MASK: u64 = (1 << 33) - 1;
/// Longest gap between PCRs in decode time: 40 ms, DVB's limit (ISO/IEC 13818-1 allows 100 ms).
pub const PCR_INTERVAL_90K: u64 = 3_600;
/// Longest run of AAC frames in one PES (decode time of the last frame minus the first's).
pub const AUDIO_PES_MAX_DURATION_90K: u64 = 45_000;

/// `nal_unit_type` mask of the NAL header.
const NAL_TYPE_MASK: u8 = 0x1f;
/// `nal_unit_type` sequence parameter set.
const NAL_TYPE_SPS: u8 = 7;
/// `nal_unit_type` picture parameter set.
const NAL_TYPE_PPS: u8 = 8;
/// `nal_unit_type` access unit delimiter.
const NAL_TYPE_AUD: u8 = 9;
/// `nal_unit_type` subset sequence parameter set.
const NAL_TYPE_SUBSET_SPS: u8 = 15;
/// Annex B start code with `zero_byte`.
const START_CODE_4: [u8; 4] = [0x00, 0x00, 0x00, 0x01];
/// Annex B start code without `zero_byte`.
const START_CODE_3: [u8; 3] = [0x00, 0x00, 0x01];
/// Start code + access unit delimiter: `nal_unit_type` 9, `primary_pic_type` 7 (any slice
/// type), `rbsp_stop_one_bit` (H.264 §7.3.2.4).
const AUD: [u8; 6] = [0x00, 0x00, 0x00, 0x01, 0x09, 0xf0];

/// Bytes of an ADTS header without CRC (ISO/IEC 13818-7 §6.2.1, 14496-3 §1.A.2.2).
const ADTS_HEADER_LEN: usize = 7;
/// Largest `aac_frame_length` (13 bits, header included).
const ADTS_MAX_FRAME_LEN: usize = (1 << 13) - 1;
/// `adts_buffer_fullness` 0x7FF: variable bit rate.
const ADTS_BUFFER_FULLNESS_VBR: u16 = 0x7ff;
/// `syncword` 0xFFF, `ID` 0 (MPEG-4), `layer` 00, `protection_absent` 1.
const ADTS_SYNC_ID_LAYER_NO_CRC: [u8; 2] = [0xff, 0xf1];
/// Audio object type AAC LC, the core of HE-AAC (v1 and v2) in ADTS's implicit signalling.
const OBJECT_TYPE_AAC_LC: u32 = 2;

/// Why a segment cannot be muxed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TsError {
    /// The track list is not one of: H.264; AAC; H.264 then AAC.
    #[error("unsupported track layout: {0}")]
    Tracks(&'static str),
    /// The AAC configuration cannot be expressed in an ADTS header.
    #[error("AAC cannot be carried in ADTS: {0}")]
    Adts(String),
    /// A track's bytes do not match its sample table.
    #[error("track {track}: {detail}")]
    Data {
        /// Index of the track in the input.
        track: usize,
        /// What does not match.
        detail: &'static str,
    },
    /// A sample's content cannot be converted.
    #[error("track {track} sample {index}: {detail}")]
    Sample {
        /// Index of the track in the input.
        track: usize,
        /// Decode-order index of the sample.
        index: usize,
        /// What is wrong.
        detail: &'static str,
    },
}

/// The codec of one input track.
#[derive(Clone, Copy, Debug)]
pub enum TsCodec<'a> {
    /// H.264 with AVCC (length-prefixed) samples.
    Avc(&'a AvcConfig),
    /// AAC with raw (no ADTS) frames.
    Aac(&'a AacConfig),
}

/// One track of the fragment to mux.
#[derive(Clone, Copy, Debug)]
pub struct TsTrack<'a> {
    /// The codec configuration (SPS/PPS, NAL length size / AudioSpecificConfig).
    pub codec: TsCodec<'a>,
    /// Sample timing from [`crate::timeline`]; any timescale (converted to 90 kHz).
    pub timing: &'a TrackTiming,
    /// The samples' stored bytes, concatenated in decode order (`timing.data_len()` bytes).
    pub data: &'a [u8],
}

/// CRC-32/MPEG-2 (ISO/IEC 13818-1 Annex A): polynomial 0x04C11DB7, initial value 0xFFFFFFFF,
/// no reflection, no final XOR.
pub fn crc32_mpeg2(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0xffff_ffff, |crc, &b| {
        (crc << 8) ^ CRC_TABLE[usize::from((crc >> 24) as u8 ^ b)]
    })
}

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    const POLYNOMIAL: u32 = 0x04c1_1db7;
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ POLYNOMIAL
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// A PTS or DTS field (§2.4.3.7): 4-bit prefix, then the 33-bit time (mod 2^33) as 3 + 15 +
/// 15 bits, each group followed by a `marker_bit`.
pub fn encode_timestamp(prefix: u8, ticks_90k: u64) -> [u8; TIMESTAMP_LEN] {
    let t = ticks_90k & TIMESTAMP_MASK;
    [
        prefix << 4 | ((t >> 30) as u8 & 0x07) << 1 | 1, // prefix, TS[32..30], marker_bit
        (t >> 22) as u8,                                 // TS[29..22]
        ((t >> 15) as u8 & 0x7f) << 1 | 1,               // TS[21..15], marker_bit
        (t >> 7) as u8,                                  // TS[14..7]
        (t as u8 & 0x7f) << 1 | 1,                       // TS[6..0], marker_bit
    ]
}

/// `program_clock_reference_base` (33 bits, mod 2^33), 6 reserved bits, a zero 9-bit extension.
pub fn encode_pcr(base_90k: u64) -> [u8; PCR_LEN] {
    let b = base_90k & TIMESTAMP_MASK;
    [
        (b >> 25) as u8,
        (b >> 17) as u8,
        (b >> 9) as u8,
        (b >> 1) as u8,
        (b as u8 & 1) << 7 | 0x7e, // base bit 0, reserved '111111', extension bit 8 = 0
        0x00,                      // extension bits 7..0
    ]
}

/// The PES header of one PES packet (§2.4.3.6) with `PES_packet_length` for `payload_len`
/// bytes of payload (0 = unbounded, allowed for video only, when it does not fit 16 bits).
/// Returns the buffer and the number of bytes used.
pub fn pes_header(
    stream_id: u8,
    pts_90k: u64,
    dts_90k: Option<u64>,
    payload_len: usize,
) -> ([u8; PES_FIXED_HEADER_LEN + 2 * TIMESTAMP_LEN], usize) {
    let mut h = [0u8; PES_FIXED_HEADER_LEN + 2 * TIMESTAMP_LEN];
    let optional_len = if dts_90k.is_some() {
        2 * TIMESTAMP_LEN
    } else {
        TIMESTAMP_LEN
    };
    let length = PES_LENGTH_FIELD_BASE + optional_len + payload_len;
    let length = if length > PES_MAX_PACKET_LENGTH {
        0
    } else {
        length as u16
    };
    h[..3].copy_from_slice(&PES_START_CODE); // packet_start_code_prefix
    h[3] = stream_id; // stream_id
    h[4..6].copy_from_slice(&length.to_be_bytes()); // PES_packet_length
    h[6] = PES_FLAGS_ALIGNED; // '10', scrambling, priority, data_alignment_indicator, copyright, original
    h[8] = optional_len as u8; // PES_header_data_length
    match dts_90k {
        None => {
            h[7] = PES_PTS_ONLY; // PTS_DTS_flags '10', no other optional field
            h[9..14].copy_from_slice(&encode_timestamp(PTS_ONLY_PREFIX, pts_90k));
            // PTS
        }
        Some(dts) => {
            h[7] = PES_PTS_DTS; // PTS_DTS_flags '11'
            h[9..14].copy_from_slice(&encode_timestamp(PTS_WITH_DTS_PREFIX, pts_90k)); // PTS
            h[14..19].copy_from_slice(&encode_timestamp(DTS_PREFIX, dts)); // DTS
        }
    }
    (h, PES_FIXED_HEADER_LEN + optional_len)
}

/// Ticks of `timescale` → 90 kHz, rounding half up (absolute times, so fragments line up).
fn to_90k(ticks: u64, timescale: u32) -> u64 {
    if timescale == MPEG_TIMESCALE {
        return ticks;
    }
    let t = (u128::from(ticks) * u128::from(MPEG_TIMESCALE) + u128::from(timescale / 2))
        / u128::from(timescale.max(1));
    u64::try_from(t).unwrap_or(u64::MAX)
}

/// The fixed part of every ADTS header of a track.
#[derive(Clone, Copy, Debug)]
struct Adts {
    /// `profile_ObjectType`, `sampling_frequency_index`, `private_bit`, channel_configuration[2].
    byte2: u8,
    /// channel_configuration[1..0] in bits 7..6 (the rest of byte 3 carries zero flags).
    byte3: u8,
}

impl Adts {
    fn new(config: &AacConfig) -> Result<Adts, TsError> {
        // HE-AAC is signalled implicitly in ADTS: the core (LC) at the core rate.
        let object_type = match config.object_type {
            OBJECT_TYPE_SBR | OBJECT_TYPE_PS => OBJECT_TYPE_AAC_LC,
            t @ 1..=4 => t,
            t => return Err(TsError::Adts(format!("audio object type {t}"))),
        };
        let frequency_index = SAMPLING_FREQUENCIES
            .iter()
            .position(|&f| f == config.sample_rate)
            .ok_or_else(|| TsError::Adts(format!("sampling rate {} Hz", config.sample_rate)))?;
        let channel_configuration = match config.channels {
            c @ 1..=6 => c,
            8 => 7,
            c => return Err(TsError::Adts(format!("{c} channels"))),
        };
        if config.frame_length != 1024 {
            return Err(TsError::Adts(format!(
                "{}-sample frames",
                config.frame_length
            )));
        }
        Ok(Adts {
            // profile_ObjectType (2), sampling_frequency_index (4), private_bit 0, channel_configuration[2]
            byte2: ((object_type - 1) as u8) << 6
                | (frequency_index as u8) << 2
                | (channel_configuration >> 2) as u8,
            // channel_configuration[1..0]; original_copy, home, copyright bits 0
            byte3: ((channel_configuration & 0x3) as u8) << 6,
        })
    }

    /// The header of a frame of `frame_len` bytes (without header); the caller checks the size.
    fn header(&self, frame_len: usize) -> [u8; ADTS_HEADER_LEN] {
        let len = frame_len + ADTS_HEADER_LEN; // aac_frame_length, 13 bits
        let fullness = ADTS_BUFFER_FULLNESS_VBR;
        [
            ADTS_SYNC_ID_LAYER_NO_CRC[0],
            ADTS_SYNC_ID_LAYER_NO_CRC[1],
            self.byte2,
            self.byte3 | (len >> 11) as u8 & 0x03, // ..., aac_frame_length[12..11]
            (len >> 3) as u8,                      // aac_frame_length[10..3]
            (len as u8 & 0x07) << 5 | (fullness >> 6) as u8, // aac_frame_length[2..0], adts_buffer_fullness[10..6]
            ((fullness & 0x3f) as u8) << 2, // adts_buffer_fullness[5..0], number_of_raw_data_blocks_in_frame 0
        ]
    }
}

/// Whether an AAC configuration can be carried in ADTS headers (object types 1–4, or HE-AAC
/// with an LC core; a sampling rate of the ADTS table; 1–6 or 8 channels; 1024-sample frames).
pub fn check_adts(config: &AacConfig) -> Result<(), TsError> {
    Adts::new(config).map(drop)
}

/// Iterates the NAL units of an AVCC sample (`nal_length_size`-byte big-endian lengths).
struct NalUnits<'a> {
    data: &'a [u8],
    length_size: usize,
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = Result<&'a [u8], &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.data.is_empty() {
                return None;
            }
            if self.data.len() < self.length_size {
                self.data = &[];
                return Some(Err("truncated NAL unit length"));
            }
            let (prefix, rest) = self.data.split_at(self.length_size);
            let len = prefix
                .iter()
                .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
            if len > rest.len() {
                self.data = &[];
                return Some(Err("NAL unit length beyond the sample"));
            }
            let (nal, rest) = rest.split_at(len);
            self.data = rest;
            if !nal.is_empty() {
                return Some(Ok(nal));
            }
        }
    }
}

/// A muxable track with what the planning pass derives once.
struct Input<'a> {
    pid: u16,
    stream_id: u8,
    kind: Kind<'a>,
    timing: &'a TrackTiming,
    data: &'a [u8],
    /// Byte offset of each sample in `data`, plus the end.
    offsets: Vec<usize>,
}

#[derive(Clone, Copy)]
enum Kind<'a> {
    Avc(&'a AvcConfig),
    Aac(Adts),
}

/// One PES packet to write: samples `first..end` of track `track`.
#[derive(Clone, Copy, Debug)]
struct Unit {
    track: usize,
    first: usize,
    end: usize,
    pts_90k: u64,
    dts_90k: u64,
    /// H.264 key frame: prepend SPS/PPS (unless in band) and set random_access_indicator.
    key: bool,
    /// The access unit carries its own SPS and PPS.
    in_band_parameter_sets: bool,
    payload_len: usize,
    /// Adaptation field flags of the first packet (without PCR_flag) and the PCR.
    af_flags: u8,
    pcr_90k: Option<u64>,
}

impl Unit {
    fn header_len(&self) -> usize {
        PES_FIXED_HEADER_LEN
            + if self.pts_90k != self.dts_90k {
                2 * TIMESTAMP_LEN
            } else {
                TIMESTAMP_LEN
            }
    }

    fn pes_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Adaptation field bytes the first packet needs before any stuffing.
    fn first_af_len(&self) -> usize {
        match (self.af_flags != 0, self.pcr_90k.is_some()) {
            (_, true) => 2 + PCR_LEN,
            (true, false) => 2,
            (false, false) => 0,
        }
    }

    /// Transport packets of this PES.
    fn packets(&self) -> usize {
        let first = PACKET_PAYLOAD_LEN - self.first_af_len();
        1 + self
            .pes_len()
            .saturating_sub(first)
            .div_ceil(PACKET_PAYLOAD_LEN)
    }
}

/// Calls `f` with each piece of a unit's PES payload, in order.
fn for_each_piece<'a>(
    input: &Input<'a>,
    track: usize,
    unit: &Unit,
    mut f: impl FnMut(&[u8]),
) -> Result<(), TsError> {
    match input.kind {
        Kind::Avc(config) => {
            let index = unit.first;
            let sample = &input.data[input.offsets[index]..input.offsets[index + 1]];
            f(&AUD);
            if unit.key && !unit.in_band_parameter_sets {
                for ps in config.sps.iter().chain(&config.pps) {
                    f(&START_CODE_4);
                    f(ps);
                }
            }
            let nal_units = NalUnits {
                data: sample,
                length_size: usize::from(config.nal_length_size),
            };
            for nal in nal_units {
                let nal = nal.map_err(|detail| TsError::Sample {
                    track,
                    index,
                    detail,
                })?;
                match nal[0] & NAL_TYPE_MASK {
                    NAL_TYPE_AUD => {} // ours is already in front
                    NAL_TYPE_SPS | NAL_TYPE_PPS | NAL_TYPE_SUBSET_SPS => {
                        f(&START_CODE_4);
                        f(nal);
                    }
                    _ => {
                        f(&START_CODE_3);
                        f(nal);
                    }
                }
            }
        }
        Kind::Aac(adts) => {
            for index in unit.first..unit.end {
                let frame = &input.data[input.offsets[index]..input.offsets[index + 1]];
                f(&adts.header(frame.len()));
                f(frame);
            }
        }
    }
    Ok(())
}

/// Checks the track layout and derives each track's PID, offsets and codec state.
fn inputs<'a>(tracks: &[TsTrack<'a>]) -> Result<Vec<Input<'a>>, TsError> {
    let layout_ok = match tracks {
        [t] => matches!(t.codec, TsCodec::Avc(_) | TsCodec::Aac(_)),
        [v, a] => matches!((v.codec, a.codec), (TsCodec::Avc(_), TsCodec::Aac(_))),
        _ => false,
    };
    if !layout_ok {
        return Err(TsError::Tracks(
            "one H.264 track, one AAC track, or H.264 then AAC",
        ));
    }
    tracks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.timing.samples.is_empty() {
                return Err(TsError::Data {
                    track: i,
                    detail: "no samples",
                });
            }
            if t.timing.timescale == 0 {
                return Err(TsError::Data {
                    track: i,
                    detail: "timescale 0",
                });
            }
            let mut offsets = Vec::with_capacity(t.timing.samples.len() + 1);
            let mut end = 0usize;
            offsets.push(0);
            for s in &t.timing.samples {
                end = end
                    .checked_add(s.size as usize)
                    .filter(|&e| e <= t.data.len())
                    .ok_or(TsError::Data {
                        track: i,
                        detail: "sample sizes exceed the data",
                    })?;
                offsets.push(end);
            }
            if end != t.data.len() {
                return Err(TsError::Data {
                    track: i,
                    detail: "data longer than the samples",
                });
            }
            let (pid, stream_id, kind) = match t.codec {
                TsCodec::Avc(c) => {
                    if !matches!(c.nal_length_size, 1 | 2 | 4) {
                        return Err(TsError::Data {
                            track: i,
                            detail: "NAL length size not 1, 2 or 4",
                        });
                    }
                    (PID_VIDEO, STREAM_ID_VIDEO, Kind::Avc(c))
                }
                TsCodec::Aac(c) => (PID_AUDIO, STREAM_ID_AUDIO, Kind::Aac(Adts::new(c)?)),
            };
            Ok(Input {
                pid,
                stream_id,
                kind,
                timing: t.timing,
                data: t.data,
                offsets,
            })
        })
        .collect()
}

/// Splits every track into PES units, ordered for writing, with their lengths and flags.
fn plan(inputs: &[Input<'_>]) -> Result<Vec<Unit>, TsError> {
    let mut units = Vec::new();
    for (track, input) in inputs.iter().enumerate() {
        let timescale = input.timing.timescale;
        let samples = &input.timing.samples;
        match input.kind {
            Kind::Avc(config) => {
                for (index, s) in samples.iter().enumerate() {
                    let sample = &input.data[input.offsets[index]..input.offsets[index + 1]];
                    let mut types = 0u32; // bit n: a NAL unit of type n is present
                    let nal_units = NalUnits {
                        data: sample,
                        length_size: usize::from(config.nal_length_size),
                    };
                    for nal in nal_units {
                        let nal = nal.map_err(|detail| TsError::Sample {
                            track,
                            index,
                            detail,
                        })?;
                        types |= 1 << (nal[0] & NAL_TYPE_MASK);
                    }
                    let in_band =
                        types & (1 << NAL_TYPE_SPS) != 0 && types & (1 << NAL_TYPE_PPS) != 0;
                    let mut unit = Unit {
                        track,
                        first: index,
                        end: index + 1,
                        pts_90k: to_90k(s.pts, timescale),
                        dts_90k: to_90k(s.dts, timescale),
                        key: s.sync,
                        in_band_parameter_sets: in_band,
                        payload_len: 0,
                        af_flags: if s.sync { AF_RANDOM_ACCESS } else { 0 },
                        pcr_90k: None,
                    };
                    let mut len = 0;
                    for_each_piece(input, track, &unit, |p| len += p.len())?;
                    unit.payload_len = len;
                    units.push(unit);
                }
            }
            Kind::Aac(_) => {
                let max_payload = PES_MAX_PACKET_LENGTH - PES_LENGTH_FIELD_BASE - TIMESTAMP_LEN;
                let mut index = 0;
                while index < samples.len() {
                    let first_dts = to_90k(samples[index].dts, timescale);
                    let mut end = index;
                    let mut len = 0usize;
                    while end < samples.len() {
                        let size = samples[end].size as usize;
                        if size + ADTS_HEADER_LEN > ADTS_MAX_FRAME_LEN {
                            return Err(TsError::Sample {
                                track,
                                index: end,
                                detail: "AAC frame longer than ADTS allows",
                            });
                        }
                        let dts = to_90k(samples[end].dts, timescale);
                        let fits = len + ADTS_HEADER_LEN + size <= max_payload
                            && dts.saturating_sub(first_dts) < AUDIO_PES_MAX_DURATION_90K;
                        if end > index && !fits {
                            break;
                        }
                        len += ADTS_HEADER_LEN + size;
                        end += 1;
                    }
                    let pts = to_90k(samples[index].pts, timescale);
                    units.push(Unit {
                        track,
                        first: index,
                        end,
                        pts_90k: pts,
                        dts_90k: pts, // AAC: decode = presentation
                        key: true,
                        in_band_parameter_sets: false,
                        payload_len: len,
                        af_flags: 0,
                        pcr_90k: None,
                    });
                    index = end;
                }
            }
        }
    }
    // Decode order across tracks; video before audio at equal times.
    units.sort_by_key(|u| (u.dts_90k, u.track));
    // The PCR track (video, else the only track) is track 0: its first PES goes first.
    if let Some(pos) = units.iter().position(|u| u.track == 0) {
        units[..=pos].rotate_right(1);
    }
    let earliest = units.iter().map(|u| u.dts_90k).min().unwrap_or(0);
    let mut last_pcr: Option<u64> = None;
    let mut seen = [false; 2];
    for unit in &mut units {
        if !seen[unit.track] {
            // First packet of this PID in the segment: counters restart at 0.
            unit.af_flags |= AF_DISCONTINUITY;
            if matches!(inputs[unit.track].kind, Kind::Aac(_)) {
                // Audio: the segment starts at a frame boundary (every AAC frame is a sync point).
                unit.af_flags |= AF_RANDOM_ACCESS;
            }
            seen[unit.track] = true;
        }
        if unit.track == 0 {
            match last_pcr {
                None => {
                    unit.pcr_90k = Some(earliest);
                    last_pcr = Some(earliest);
                }
                Some(last) if unit.dts_90k >= last + PCR_INTERVAL_90K => {
                    unit.pcr_90k = Some(unit.dts_90k);
                    last_pcr = Some(unit.dts_90k);
                }
                Some(_) => {}
            }
        }
    }
    Ok(units)
}

/// Writes a PSI section (§2.4.4.3 / §2.4.4.8) with long-form header and CRC_32, its body from
/// `body`, `section_length` patched in.
fn write_section(out: &mut Vec<u8>, table_id: u8, id: u16, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.push(table_id); // table_id
    out.extend_from_slice(&[SECTION_SYNTAX, 0]); // section_syntax_indicator, '0', reserved, section_length (patched)
    out.extend_from_slice(&id.to_be_bytes()); // transport_stream_id / program_number
    out.push(VERSION_CURRENT); // reserved, version_number, current_next_indicator
    out.push(0); // section_number
    out.push(0); // last_section_number
    body(out);
    // Bytes after section_length, CRC included; a one-packet section is far below 1021.
    let section_length = (out.len() - start - 3 + CRC_LEN) as u16;
    out[start + 1] = SECTION_SYNTAX | (section_length >> 8) as u8;
    out[start + 2] = section_length as u8;
    let crc = crc32_mpeg2(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes()); // CRC_32
}

/// Writes one packet carrying one PSI section: header, an adaptation field with only
/// `discontinuity_indicator` (counters restart at 0 in every segment), `pointer_field`, the
/// section, 0xFF fill.
fn write_psi_packet(out: &mut Vec<u8>, pid: u16, section: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.push(SYNC_BYTE);
    out.push(PAYLOAD_UNIT_START | (pid >> 8) as u8); // TEI 0, PUSI 1, priority 0, PID[12..8]
    out.push(pid as u8); // PID[7..0]
    out.push(AFC_ADAPTATION_AND_PAYLOAD); // not scrambled, adaptation field + payload, continuity_counter 0
    out.push(1); // adaptation_field_length
    out.push(AF_DISCONTINUITY); // flags: the counter restarts in every segment
    out.push(0); // pointer_field: the section starts right here
    section(out);
    out.resize(start + PACKET_LEN, STUFFING_BYTE);
}

/// PAT (§2.4.4.3): program 1 on [`PID_PMT`].
pub fn write_pat(out: &mut Vec<u8>) {
    write_psi_packet(out, PID_PAT, |out| {
        write_section(out, TABLE_ID_PAT, TRANSPORT_STREAM_ID, |out| {
            out.extend_from_slice(&PROGRAM_NUMBER.to_be_bytes()); // program_number
            out.extend_from_slice(&(RESERVED_PID_BITS | PID_PMT).to_be_bytes());
            // reserved, program_map_PID
        })
    });
}

/// PMT (§2.4.4.8): `streams` as (stream_type, elementary_PID), the first one carrying the PCR.
pub fn write_pmt(out: &mut Vec<u8>, streams: &[(u8, u16)]) {
    let pcr_pid = streams.first().map_or(PID_VIDEO, |s| s.1);
    write_psi_packet(out, PID_PMT, |out| {
        write_section(out, TABLE_ID_PMT, PROGRAM_NUMBER, |out| {
            out.extend_from_slice(&(RESERVED_PID_BITS | pcr_pid).to_be_bytes()); // reserved, PCR_PID
            out.extend_from_slice(&RESERVED_LENGTH_BITS.to_be_bytes()); // reserved, program_info_length 0
            for &(stream_type, pid) in streams {
                out.push(stream_type); // stream_type
                out.extend_from_slice(&(RESERVED_PID_BITS | pid).to_be_bytes()); // reserved, elementary_PID
                out.extend_from_slice(&RESERVED_LENGTH_BITS.to_be_bytes()); // reserved, ES_info_length 0
            }
        })
    });
}

/// Frames a PES packet's bytes into transport packets as they are pushed.
struct Packetizer<'o> {
    out: &'o mut Vec<u8>,
    pid: u16,
    cc: u8,
    /// PES bytes not yet written.
    remaining: usize,
    /// Payload bytes left in the current packet.
    room: usize,
    first: bool,
    af_flags: u8,
    pcr_90k: Option<u64>,
}

impl Packetizer<'_> {
    fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.room == 0 {
                self.start_packet();
            }
            let n = self.room.min(bytes.len());
            self.out.extend_from_slice(&bytes[..n]);
            self.room -= n;
            self.remaining -= n;
            bytes = &bytes[n..];
        }
    }

    /// Packet header and adaptation field: flags and PCR in the PES's first packet, stuffing
    /// in its last (so the PES ends exactly at the packet end).
    fn start_packet(&mut self) {
        let (flags, pcr) = if self.first {
            (self.af_flags, self.pcr_90k)
        } else {
            (0, None)
        };
        let fields_len = match (flags != 0, pcr.is_some()) {
            (_, true) => 2 + PCR_LEN,
            (true, false) => 2,
            (false, false) => 0,
        };
        let stuffing = (PACKET_PAYLOAD_LEN - fields_len).saturating_sub(self.remaining);
        let af_len = fields_len + stuffing; // adaptation field bytes, its length byte included
        self.out.push(SYNC_BYTE);
        let pusi = if self.first { PAYLOAD_UNIT_START } else { 0 };
        self.out.push(pusi | (self.pid >> 8) as u8); // TEI 0, PUSI, priority 0, PID[12..8]
        self.out.push(self.pid as u8); // PID[7..0]
        let afc = if af_len > 0 {
            AFC_ADAPTATION_AND_PAYLOAD
        } else {
            AFC_PAYLOAD_ONLY
        };
        self.out.push(afc | self.cc); // not scrambled, adaptation_field_control, continuity_counter
        self.cc = (self.cc + 1) & 0x0f;
        if af_len > 0 {
            self.out.push((af_len - 1) as u8); // adaptation_field_length
            if af_len > 1 {
                self.out
                    .push(flags | if pcr.is_some() { AF_PCR } else { 0 }); // flags
                if let Some(pcr) = pcr {
                    self.out.extend_from_slice(&encode_pcr(pcr)); // program_clock_reference
                }
                let fill = af_len - 2 - if pcr.is_some() { PCR_LEN } else { 0 };
                self.out.resize(self.out.len() + fill, STUFFING_BYTE); // stuffing_byte
            }
        }
        self.room = PACKET_PAYLOAD_LEN - af_len;
        self.first = false;
    }
}

/// The byte length of the segment [`mux_segment`] writes for `tracks`.
pub fn segment_len(tracks: &[TsTrack<'_>]) -> Result<usize, TsError> {
    let inputs = inputs(tracks)?;
    let units = plan(&inputs)?;
    Ok(PACKET_LEN * (2 + units.iter().map(Unit::packets).sum::<usize>()))
}

/// One transport stream segment of a fragment's tracks (H.264; AAC; or H.264 then AAC).
pub fn mux_segment(tracks: &[TsTrack<'_>]) -> Result<Vec<u8>, TsError> {
    let mut out = Vec::new();
    mux_segment_into(tracks, &mut out)?;
    Ok(out)
}

/// [`mux_segment`] appending to `out` (reserved to the exact length first).
pub fn mux_segment_into(tracks: &[TsTrack<'_>], out: &mut Vec<u8>) -> Result<(), TsError> {
    let inputs = inputs(tracks)?;
    let units = plan(&inputs)?;
    let len = PACKET_LEN * (2 + units.iter().map(Unit::packets).sum::<usize>());
    let start = out.len();
    out.reserve(len);
    write_pat(out);
    let streams: Vec<(u8, u16)> = inputs
        .iter()
        .map(|i| match i.kind {
            Kind::Avc(_) => (STREAM_TYPE_H264, i.pid),
            Kind::Aac(_) => (STREAM_TYPE_AAC_ADTS, i.pid),
        })
        .collect();
    write_pmt(out, &streams);
    let mut cc = [0u8; 2];
    for unit in &units {
        let input = &inputs[unit.track];
        let dts = (unit.dts_90k != unit.pts_90k).then_some(unit.dts_90k);
        let (header, header_len) = pes_header(input.stream_id, unit.pts_90k, dts, unit.payload_len);
        let mut p = Packetizer {
            out: &mut *out,
            pid: input.pid,
            cc: cc[unit.track],
            remaining: unit.pes_len(),
            room: 0,
            first: true,
            af_flags: unit.af_flags,
            pcr_90k: unit.pcr_90k,
        };
        p.push(&header[..header_len]);
        for_each_piece(input, unit.track, unit, |piece| p.push(piece))?;
        debug_assert_eq!(p.remaining, 0);
        debug_assert_eq!(p.room, 0);
        cc[unit.track] = p.cc;
    }
    debug_assert_eq!(out.len() - start, len);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_of_known_tables() {
        // ffmpeg's PAT section (transport_stream_id 1, program 1 → PID 0x1000) ends in 2a b1 04 b2.
        let pat = [
            0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00,
        ];
        assert_eq!(crc32_mpeg2(&pat), 0x2ab1_04b2);
        // CRC of a whole section including its CRC is 0 (the receiver's check).
        let mut full = pat.to_vec();
        full.extend_from_slice(&0x2ab1_04b2u32.to_be_bytes());
        assert_eq!(crc32_mpeg2(&full), 0);
        // The CRC-32/MPEG-2 check value.
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_e6e7);
    }

    #[test]
    fn timestamps_by_hand() {
        // 0: prefix 0010, all time bits zero, three marker bits.
        assert_eq!(encode_timestamp(2, 0), [0x21, 0x00, 0x01, 0x00, 0x01]);
        // 90 000 = 0b1_0101_1111_1001_0000: TS[29..15] = 2, TS[14..0] = 0x5f90.
        assert_eq!(encode_timestamp(2, 90_000), [0x21, 0x00, 0x05, 0xbf, 0x21]);
        // 2^33 − 1: every bit set; 2^33 wraps to 0.
        assert_eq!(
            encode_timestamp(3, (1 << 33) - 1),
            [0x3f, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(encode_timestamp(1, 1 << 33), encode_timestamp(1, 0));
        // PCR base 1: bit 0 in the top bit of byte 4, reserved bits set.
        assert_eq!(encode_pcr(1), [0, 0, 0, 0, 0xfe, 0x00]);
        assert_eq!(encode_pcr(0x1_0000_0000), [0x80, 0, 0, 0, 0x7e, 0x00]);
    }

    #[test]
    fn pes_headers_by_hand() {
        let (h, n) = pes_header(0xc0, 0, None, 100);
        assert_eq!(
            &h[..n],
            [0, 0, 1, 0xc0, 0, 108, 0x84, 0x80, 5, 0x21, 0x00, 0x01, 0x00, 0x01]
        );
        let (h, n) = pes_header(0xe0, 7200, Some(3600), 70_000);
        assert_eq!(
            &h[..n],
            [
                0, 0, 1, 0xe0, 0, 0, 0x84, 0xc0, 10, // length 0: does not fit 16 bits
                0x31, 0x00, 0x01, 0x38, 0x41, // PTS 7200 = 0x1c20
                0x11, 0x00, 0x01, 0x1c, 0x21, // DTS 3600 = 0xe10
            ]
        );
    }

    #[test]
    fn adts_header_by_hand() {
        // AAC-LC 48 kHz stereo, 256-byte frame: ff f1 4c 80 20 7f fc (frame length 263).
        let c = AacConfig::parse(&[0x11, 0x90]).unwrap();
        let adts = Adts::new(&c).unwrap();
        assert_eq!(adts.header(256), [0xff, 0xf1, 0x4c, 0x80, 0x20, 0xff, 0xfc]);
        // HE-AAC: LC core at the core rate.
        let he = AacConfig::parse(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(Adts::new(&he).unwrap().byte2 >> 6, 1);
    }
}
