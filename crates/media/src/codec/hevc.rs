//! H.265: `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §8.3.3.1) and the sequence
//! parameter set fields that give the picture size (ITU-T H.265 §7.3.2.2.1, §7.3.3).

use super::bits::{rbsp, BitReader, ByteReader};
use super::{check_picture_size, CodecError};
use bytes::Bytes;

/// `configurationVersion` of every HEVC record.
const HEVC_CONFIGURATION_VERSION: u8 = 1;
/// `nal_unit_type` of a video parameter set (H.265 Table 7-1).
pub const NAL_TYPE_VPS: u8 = 32;
/// `nal_unit_type` of a sequence parameter set.
pub const NAL_TYPE_SPS: u8 = 33;
/// `nal_unit_type` of a picture parameter set.
pub const NAL_TYPE_PPS: u8 = 34;
/// Most sub-layers an SPS may declare (`sps_max_sub_layers_minus1` ≤ 6).
const MAX_SUB_LAYERS: u32 = 7;

/// A parsed `HEVCDecoderConfigurationRecord` with the first SPS's picture size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HevcConfig {
    /// `general_profile_space` (0–3; 1–3 print as A–C in the codec string).
    pub general_profile_space: u8,
    /// `general_tier_flag` (false = Main tier `L`, true = High tier `H`).
    pub general_tier_flag: bool,
    /// `general_profile_idc` (1 = Main, 2 = Main 10, …).
    pub general_profile_idc: u8,
    /// `general_profile_compatibility_flags`, flag 0 in the most significant bit.
    pub general_profile_compatibility_flags: u32,
    /// The 48 bits of `general_constraint_indicator_flags`, as 6 bytes.
    pub general_constraint_indicator_flags: [u8; 6],
    /// `general_level_idc` (30 × level, e.g. 93 = level 3.1).
    pub general_level_idc: u8,
    /// Bytes in each sample's NAL length prefix (`lengthSizeMinusOne + 1`: 1, 2 or 4).
    pub nal_length_size: u8,
    /// Video parameter set NAL units (with their 2-byte NAL header).
    pub vps: Vec<Bytes>,
    /// Sequence parameter set NAL units.
    pub sps: Vec<Bytes>,
    /// Picture parameter set NAL units.
    pub pps: Vec<Bytes>,
    /// Displayed width (`pic_width_in_luma_samples` minus the conformance window).
    pub width: u32,
    /// Displayed height.
    pub height: u32,
}

impl HevcConfig {
    /// Parses Matroska `V_MPEGH/ISO/HEVC` CodecPrivate (= the `hvcC` box body).
    pub fn parse(record: &[u8]) -> Result<HevcConfig, CodecError> {
        const CTX: &str = "HEVCDecoderConfigurationRecord";
        let mut r = ByteReader::new(record, CTX);
        let version = r.u8()?; // configurationVersion
        if version != HEVC_CONFIGURATION_VERSION {
            return Err(CodecError::invalid(
                CTX,
                format!("configurationVersion {version}"),
            ));
        }
        let byte = r.u8()?; // general_profile_space(2) general_tier_flag(1) general_profile_idc(5)
        let general_profile_space = byte >> 6;
        let general_tier_flag = byte & 0x20 != 0;
        let general_profile_idc = byte & 0x1f;
        let general_profile_compatibility_flags = r.u32()?; // general_profile_compatibility_flags
        let mut general_constraint_indicator_flags = [0u8; 6];
        general_constraint_indicator_flags.copy_from_slice(r.take(6)?); // general_constraint_indicator_flags
        let general_level_idc = r.u8()?; // general_level_idc
        r.take(2)?; // reserved '1111' + min_spatial_segmentation_idc
        r.u8()?; // reserved '111111' + parallelismType
        r.u8()?; // reserved '111111' + chromaFormat
        r.u8()?; // reserved '11111' + bitDepthLumaMinus8
        r.u8()?; // reserved '11111' + bitDepthChromaMinus8
        r.u16()?; // avgFrameRate
                  // constantFrameRate(2) numTemporalLayers(3) temporalIdNested(1) lengthSizeMinusOne(2)
        let nal_length_size = (r.u8()? & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(CodecError::invalid(
                CTX,
                "lengthSizeMinusOne 2 (NAL lengths are 1, 2 or 4 bytes)",
            ));
        }
        let arrays = r.u8()?; // numOfArrays
        let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..arrays {
            let array_type = r.u8()? & 0x3f; // array_completeness(1) reserved(1) NAL_unit_type(6)
            let count = r.u16()?; // numNalus
            for _ in 0..count {
                let len = r.u16()?; // nalUnitLength
                let nal = r.take(usize::from(len))?; // nalUnit
                if nal.len() < 2 {
                    return Err(CodecError::invalid(CTX, "NAL unit shorter than its header"));
                }
                let nal_type = (nal[0] >> 1) & 0x3f;
                if nal_type != array_type {
                    return Err(CodecError::invalid(
                        CTX,
                        format!("NAL unit of type {nal_type} in an array of type {array_type}"),
                    ));
                }
                let list = match nal_type {
                    NAL_TYPE_VPS => &mut vps,
                    NAL_TYPE_SPS => &mut sps,
                    NAL_TYPE_PPS => &mut pps,
                    _ => continue, // SEI and others: carried in hvcC verbatim, not needed here
                };
                list.push(Bytes::copy_from_slice(nal));
            }
        }
        let first = sps
            .first()
            .ok_or_else(|| CodecError::invalid(CTX, "no SPS NAL unit"))?;
        let (width, height) = sps_picture_size(first)?;
        Ok(HevcConfig {
            general_profile_space,
            general_tier_flag,
            general_profile_idc,
            general_profile_compatibility_flags,
            general_constraint_indicator_flags,
            general_level_idc,
            nal_length_size,
            vps,
            sps,
            pps,
            width,
            height,
        })
    }

    /// The `CODECS` value per ISO/IEC 14496-15 Annex E.3 with the `hvc1` sample entry (parameter
    /// sets only in `hvcC`, which Safari requires): `hvc1.[A-C]<profile_idc>.<compatibility
    /// flags, bit-reversed, hex>.<L|H><level_idc>` followed by `.<byte>` for each constraint
    /// byte up to the last non-zero one (uppercase hex, as in the spec's examples), e.g.
    /// `hvc1.1.6.L93.B0`.
    pub fn codec_string(&self) -> String {
        let space = match self.general_profile_space {
            1 => "A",
            2 => "B",
            3 => "C",
            _ => "",
        };
        let tier = if self.general_tier_flag { 'H' } else { 'L' };
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{tier}{}",
            self.general_profile_idc,
            self.general_profile_compatibility_flags.reverse_bits(),
            self.general_level_idc
        );
        let flags = &self.general_constraint_indicator_flags;
        let used = flags.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        for byte in &flags[..used] {
            s.push_str(&format!(".{byte:X}"));
        }
        s
    }
}

/// Width and height from an SPS NAL unit (with its 2-byte header).
pub fn sps_picture_size(nal: &[u8]) -> Result<(u32, u32), CodecError> {
    const CTX: &str = "H.265 SPS";
    let rbsp = rbsp(nal);
    let mut r = BitReader::new(&rbsp, CTX);
    r.skip(16)?; // nal_unit_header: forbidden_zero_bit, nal_unit_type, nuh_layer_id, nuh_temporal_id_plus1
    r.bits(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?; // sps_max_sub_layers_minus1
    if max_sub_layers_minus1 + 1 > MAX_SUB_LAYERS {
        return Err(CodecError::invalid(
            CTX,
            format!("sps_max_sub_layers_minus1 {max_sub_layers_minus1}"),
        ));
    }
    r.flag()?; // sps_temporal_id_nesting_flag
    skip_profile_tier_level(&mut r, max_sub_layers_minus1)?;
    let sps_id = r.ue()?; // sps_seq_parameter_set_id
    if sps_id > 15 {
        return Err(CodecError::invalid(
            CTX,
            format!("sps_seq_parameter_set_id {sps_id}"),
        ));
    }
    let chroma_format_idc = r.ue()?; // chroma_format_idc
    if chroma_format_idc > 3 {
        return Err(CodecError::invalid(
            CTX,
            format!("chroma_format_idc {chroma_format_idc}"),
        ));
    }
    let mut separate_colour_plane = false;
    if chroma_format_idc == 3 {
        separate_colour_plane = r.flag()?; // separate_colour_plane_flag
    }
    let pic_width = u64::from(r.ue()?); // pic_width_in_luma_samples
    let pic_height = u64::from(r.ue()?); // pic_height_in_luma_samples
    let (mut left, mut right, mut top, mut bottom) = (0u64, 0u64, 0u64, 0u64);
    if r.flag()? {
        // conformance_window_flag
        left = u64::from(r.ue()?); // conf_win_left_offset
        right = u64::from(r.ue()?); // conf_win_right_offset
        top = u64::from(r.ue()?); // conf_win_top_offset
        bottom = u64::from(r.ue()?); // conf_win_bottom_offset
    }
    // §7.4.3.2.1 with Table 6-1: ChromaArrayType 0 (monochrome or separate planes) → 1x1 units.
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (sub_width, sub_height) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let crop_x = sub_width * (left + right);
    let crop_y = sub_height * (top + bottom);
    if crop_x >= pic_width || crop_y >= pic_height {
        return Err(CodecError::invalid(
            CTX,
            "conformance window removes the whole picture",
        ));
    }
    check_picture_size(CTX, pic_width - crop_x, pic_height - crop_y)
}

/// Skips `profile_tier_level(1, sps_max_sub_layers_minus1)` (H.265 §7.3.3).
fn skip_profile_tier_level(
    r: &mut BitReader<'_>,
    max_sub_layers_minus1: u32,
) -> Result<(), CodecError> {
    // general_profile_space … general_level_idc: 2+1+5 + 32 + 4 + 43 + 1 + 8 = 96 bits.
    r.skip(96)?;
    let mut profile_present = [false; 8];
    let mut level_present = [false; 8];
    for i in 0..max_sub_layers_minus1 as usize {
        profile_present[i] = r.flag()?; // sub_layer_profile_present_flag[i]
        level_present[i] = r.flag()?; // sub_layer_level_present_flag[i]
    }
    if max_sub_layers_minus1 > 0 {
        for _ in max_sub_layers_minus1..8 {
            r.skip(2)?; // reserved_zero_2bits
        }
    }
    for i in 0..max_sub_layers_minus1 as usize {
        if profile_present[i] {
            r.skip(88)?; // sub_layer_profile_space … sub_layer_inbld_flag / reserved
        }
        if level_present[i] {
            r.skip(8)?; // sub_layer_level_idc[i]
        }
    }
    Ok(())
}
