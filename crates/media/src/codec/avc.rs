//! H.264: `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3.1) and the sequence parameter
//! set fields that give the picture size (ITU-T H.264 §7.3.2.1.1, §7.4.2.1.1).

use super::bits::{rbsp, BitReader, ByteReader};
use super::{check_picture_size, CodecError};
use bytes::Bytes;

/// `configurationVersion` of every AVC record.
const AVC_CONFIGURATION_VERSION: u8 = 1;
/// `nal_unit_type` of a sequence parameter set (H.264 Table 7-1).
const NAL_TYPE_SPS: u8 = 7;
/// `nal_unit_type` of a picture parameter set.
const NAL_TYPE_PPS: u8 = 8;
/// Mask of `nal_unit_type` in the one-byte NAL header.
const NAL_TYPE_MASK: u8 = 0x1f;
/// Profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices (§7.3.2.1.1).
const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// A parsed `AVCDecoderConfigurationRecord` with the first SPS's picture size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvcConfig {
    /// `profile_idc` of the first SPS (e.g. 100 = High).
    pub profile_idc: u8,
    /// The SPS byte holding `constraint_set0_flag` … `constraint_set5_flag` and 2 reserved bits.
    pub constraint_flags: u8,
    /// `level_idc` of the first SPS (e.g. 31 = level 3.1).
    pub level_idc: u8,
    /// Bytes in each sample's NAL length prefix (`lengthSizeMinusOne + 1`: 1, 2 or 4).
    pub nal_length_size: u8,
    /// The sequence parameter set NAL units, with their NAL header.
    pub sps: Vec<Bytes>,
    /// The picture parameter set NAL units, with their NAL header.
    pub pps: Vec<Bytes>,
    /// Displayed width in luma samples (after frame cropping).
    pub width: u32,
    /// Displayed height in luma samples (after frame cropping).
    pub height: u32,
}

impl AvcConfig {
    /// Parses Matroska `V_MPEG4/ISO/AVC` CodecPrivate (= the `avcC` box body).
    pub fn parse(record: &[u8]) -> Result<AvcConfig, CodecError> {
        const CTX: &str = "AVCDecoderConfigurationRecord";
        let mut r = ByteReader::new(record, CTX);
        let version = r.u8()?; // configurationVersion
        if version != AVC_CONFIGURATION_VERSION {
            return Err(CodecError::invalid(
                CTX,
                format!("configurationVersion {version}"),
            ));
        }
        r.take(3)?; // AVCProfileIndication, profile_compatibility, AVCLevelIndication (the SPS's own are used)
        let length_size = (r.u8()? & 0x03) + 1; // reserved '111111' + lengthSizeMinusOne
        if length_size == 3 {
            return Err(CodecError::invalid(
                CTX,
                "lengthSizeMinusOne 2 (NAL lengths are 1, 2 or 4 bytes)",
            ));
        }
        let sps_count = r.u8()? & 0x1f; // reserved '111' + numOfSequenceParameterSets
        let sps = read_nal_units(
            &mut r,
            usize::from(sps_count),
            NAL_TYPE_SPS,
            "AVCDecoderConfigurationRecord SPS",
        )?;
        let pps_count = r.u8()?; // numOfPictureParameterSets
        let pps = read_nal_units(
            &mut r,
            usize::from(pps_count),
            NAL_TYPE_PPS,
            "AVCDecoderConfigurationRecord PPS",
        )?;
        // High-profile records may go on with chroma_format etc.; the SPS is authoritative, so the rest is ignored.
        let first = sps
            .first()
            .ok_or_else(|| CodecError::invalid(CTX, "numOfSequenceParameterSets 0"))?;
        let sps_info = Sps::parse(first)?;
        Ok(AvcConfig {
            profile_idc: sps_info.profile_idc,
            constraint_flags: sps_info.constraint_flags,
            level_idc: sps_info.level_idc,
            nal_length_size: length_size,
            width: sps_info.width,
            height: sps_info.height,
            sps,
            pps,
        })
    }

    /// The RFC 6381 §3.3 `CODECS` value: `avc1.` + profile_idc, constraint flags byte and
    /// level_idc as six lowercase hex digits (e.g. `avc1.64001f`).
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

/// Reads `count` × (`u16` length, NAL unit) and checks each NAL's type.
fn read_nal_units(
    r: &mut ByteReader<'_>,
    count: usize,
    nal_type: u8,
    context: &'static str,
) -> Result<Vec<Bytes>, CodecError> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = r.u16()?; // sequenceParameterSetLength / pictureParameterSetLength
        let nal = r.take(usize::from(len))?;
        match nal.first() {
            Some(&header) if header & NAL_TYPE_MASK == nal_type => {
                out.push(Bytes::copy_from_slice(nal))
            }
            Some(&header) => {
                return Err(CodecError::invalid(
                    context,
                    format!("nal_unit_type {}", header & NAL_TYPE_MASK),
                ))
            }
            None => return Err(CodecError::invalid(context, "empty NAL unit")),
        }
    }
    Ok(out)
}

/// The SPS fields this server needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sps {
    /// `profile_idc`.
    pub profile_idc: u8,
    /// `constraint_set0_flag` … `reserved_zero_2bits` as one byte.
    pub constraint_flags: u8,
    /// `level_idc`.
    pub level_idc: u8,
    /// Width after cropping.
    pub width: u32,
    /// Height after cropping.
    pub height: u32,
}

impl Sps {
    /// Parses an SPS NAL unit (with its one-byte NAL header, emulation prevention still in place).
    pub fn parse(nal: &[u8]) -> Result<Sps, CodecError> {
        const CTX: &str = "H.264 SPS";
        let rbsp = rbsp(nal);
        let mut r = BitReader::new(&rbsp, CTX);
        r.skip(8)?; // forbidden_zero_bit, nal_ref_idc, nal_unit_type
        let profile_idc = r.bits(8)? as u8; // profile_idc
        let constraint_flags = r.bits(8)? as u8; // constraint_set0..5_flag, reserved_zero_2bits
        let level_idc = r.bits(8)? as u8; // level_idc
        let sps_id = r.ue()?; // seq_parameter_set_id
        if sps_id > 31 {
            return Err(CodecError::invalid(
                CTX,
                format!("seq_parameter_set_id {sps_id}"),
            ));
        }
        let mut chroma_format_idc = 1; // inferred 1 (4:2:0) when absent
        let mut separate_colour_plane = false;
        if HIGH_PROFILES.contains(&profile_idc) {
            chroma_format_idc = r.ue()?; // chroma_format_idc
            if chroma_format_idc > 3 {
                return Err(CodecError::invalid(
                    CTX,
                    format!("chroma_format_idc {chroma_format_idc}"),
                ));
            }
            if chroma_format_idc == 3 {
                separate_colour_plane = r.flag()?; // separate_colour_plane_flag
            }
            r.ue()?; // bit_depth_luma_minus8
            r.ue()?; // bit_depth_chroma_minus8
            r.flag()?; // qpprime_y_zero_transform_bypass_flag
            if r.flag()? {
                // seq_scaling_matrix_present_flag
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.flag()? {
                        // seq_scaling_list_present_flag[i]
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        r.ue()?; // log2_max_frame_num_minus4
        let poc_type = r.ue()?; // pic_order_cnt_type
        match poc_type {
            0 => {
                r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
            }
            1 => {
                r.flag()?; // delta_pic_order_always_zero_flag
                r.se()?; // offset_for_non_ref_pic
                r.se()?; // offset_for_top_to_bottom_field
                let cycle = r.ue()?; // num_ref_frames_in_pic_order_cnt_cycle
                if cycle > 255 {
                    return Err(CodecError::invalid(
                        CTX,
                        format!("num_ref_frames_in_pic_order_cnt_cycle {cycle}"),
                    ));
                }
                for _ in 0..cycle {
                    r.se()?; // offset_for_ref_frame[i]
                }
            }
            2 => {}
            other => {
                return Err(CodecError::invalid(
                    CTX,
                    format!("pic_order_cnt_type {other}"),
                ))
            }
        }
        r.ue()?; // max_num_ref_frames
        r.flag()?; // gaps_in_frame_num_value_allowed_flag
        let width_mbs = u64::from(r.ue()?) + 1; // pic_width_in_mbs_minus1
        let height_map_units = u64::from(r.ue()?) + 1; // pic_height_in_map_units_minus1
        let frame_mbs_only = r.flag()?; // frame_mbs_only_flag
        if !frame_mbs_only {
            r.flag()?; // mb_adaptive_frame_field_flag
        }
        r.flag()?; // direct_8x8_inference_flag
        let (mut left, mut right, mut top, mut bottom) = (0u64, 0u64, 0u64, 0u64);
        if r.flag()? {
            // frame_cropping_flag
            left = u64::from(r.ue()?); // frame_crop_left_offset
            right = u64::from(r.ue()?); // frame_crop_right_offset
            top = u64::from(r.ue()?); // frame_crop_top_offset
            bottom = u64::from(r.ue()?); // frame_crop_bottom_offset
        }
        // §7.4.2.1.1: ChromaArrayType, SubWidthC / SubHeightC (Table 6-1), CropUnitX / CropUnitY.
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
        let field_factor = if frame_mbs_only { 1 } else { 2 };
        let crop_unit_x = sub_width;
        let crop_unit_y = sub_height * field_factor;
        let full_width = width_mbs * 16;
        let full_height = field_factor * height_map_units * 16;
        let crop_x = crop_unit_x * (left + right);
        let crop_y = crop_unit_y * (top + bottom);
        if crop_x >= full_width || crop_y >= full_height {
            return Err(CodecError::invalid(
                CTX,
                "frame cropping removes the whole picture",
            ));
        }
        let (width, height) = check_picture_size(CTX, full_width - crop_x, full_height - crop_y)?;
        Ok(Sps {
            profile_idc,
            constraint_flags,
            level_idc,
            width,
            height,
        })
    }
}

/// Skips `scaling_list(…, sizeOfScalingList, …)` (H.264 §7.3.2.1.1.1).
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), CodecError> {
    let mut last_scale: i64 = 8;
    let mut next_scale: i64 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = r.se()?; // delta_scale
            next_scale = (last_scale + delta).rem_euclid(256);
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The avcC a KVS producer sent (producer-sdk-cpp#109; docs/wire.md#putmedia-body).
    const CONTRACT_D1: &str = "014d002affe1000b674d002a95a81e0089f95001000468ee3c80";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn contract_d1_record() {
        let config = AvcConfig::parse(&hex(CONTRACT_D1)).unwrap();
        assert_eq!(config.codec_string(), "avc1.4d002a");
        assert_eq!(config.nal_length_size, 4);
        assert_eq!((config.sps.len(), config.pps.len()), (1, 1));
        // Main profile, 1920x1080 (120x68 MBs cropped by 8 lines) — decoded by hand from the SPS.
        assert_eq!((config.width, config.height), (1920, 1080));
    }

    #[test]
    fn truncations_are_errors() {
        let record = hex(CONTRACT_D1);
        for len in 0..record.len() {
            assert!(
                AvcConfig::parse(&record[..len]).is_err(),
                "prefix of {len} bytes"
            );
        }
    }
}
