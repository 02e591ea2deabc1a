//! MPEG-4 Audio `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1), the Matroska `A_AAC`
//! CodecPrivate and the `DecoderSpecificInfo` of an `esds`.

use super::bits::BitReader;
use super::CodecError;

/// `samplingFrequencyIndex` → Hz (ISO/IEC 14496-3 Table 1.18); 13 and 14 are reserved.
pub const SAMPLING_FREQUENCIES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];
/// `samplingFrequencyIndex` meaning "a 24-bit `samplingFrequency` follows".
const EXPLICIT_FREQUENCY_INDEX: u32 = 0xf;
/// `audioObjectType` escape: the real type is 32 + the next 6 bits.
const OBJECT_TYPE_ESCAPE: u32 = 31;
/// Audio object type SBR (HE-AAC, explicit hierarchical signalling).
pub const OBJECT_TYPE_SBR: u32 = 5;
/// Audio object type PS (HE-AAC v2).
pub const OBJECT_TYPE_PS: u32 = 29;
/// Object types whose config is a `GASpecificConfig` (Table 1.15): AAC Main/LC/SSR/LTP, Scalable,
/// TwinVQ, and their ER variants.
const GA_OBJECT_TYPES: [u32; 12] = [1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23];

/// A parsed `AudioSpecificConfig`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AacConfig {
    /// The signalled `audioObjectType` (2 = AAC-LC, 5 = HE-AAC, 29 = HE-AAC v2), the number in `mp4a.40.N`.
    pub object_type: u32,
    /// Core sampling rate in Hz (the rate of the AAC frames, so the track timescale).
    pub sample_rate: u32,
    /// Output rate of SBR when explicitly signalled (object type 5 or 29).
    pub extension_sample_rate: Option<u32>,
    /// Channels from `channelConfiguration`.
    pub channels: u32,
    /// Samples per AAC frame at `sample_rate`: 1024, or 960 when `frameLengthFlag` is set.
    pub frame_length: u32,
}

impl AacConfig {
    /// Parses an `AudioSpecificConfig`. Trailing bits (e.g. the backward-compatible SBR
    /// extension `0x2b7` ffmpeg appends) are ignored.
    pub fn parse(asc: &[u8]) -> Result<AacConfig, CodecError> {
        const CTX: &str = "AudioSpecificConfig";
        let mut r = BitReader::new(asc, CTX);
        let object_type = read_object_type(&mut r)?; // audioObjectType
        let sample_rate = read_frequency(&mut r)?; // samplingFrequencyIndex [samplingFrequency]
        let channel_configuration = r.bits(4)?; // channelConfiguration
        let mut core_type = object_type;
        let mut extension_sample_rate = None;
        if object_type == OBJECT_TYPE_SBR || object_type == OBJECT_TYPE_PS {
            extension_sample_rate = Some(read_frequency(&mut r)?); // extensionSamplingFrequencyIndex
            core_type = read_object_type(&mut r)?; // audioObjectType (of the core)
            if core_type == 22 {
                r.bits(4)?; // extensionChannelConfiguration
            }
        }
        if !GA_OBJECT_TYPES.contains(&core_type) {
            return Err(CodecError::unsupported(
                CTX,
                format!("audioObjectType {core_type}"),
            ));
        }
        let frame_length_flag = r.flag()?; // GASpecificConfig: frameLengthFlag
        let channels = match channel_configuration {
            0 => {
                return Err(CodecError::unsupported(
                    CTX,
                    "channelConfiguration 0 (program_config_element)",
                ))
            }
            1..=6 => channel_configuration,
            7 | 12 | 14 => 8,
            11 => 7,
            13 => 24,
            other => {
                return Err(CodecError::invalid(
                    CTX,
                    format!("channelConfiguration {other}"),
                ))
            }
        };
        Ok(AacConfig {
            object_type,
            sample_rate,
            extension_sample_rate,
            channels,
            frame_length: if frame_length_flag { 960 } else { 1024 },
        })
    }

    /// The RFC 6381 `CODECS` value: `mp4a.40.<audioObjectType>` (e.g. `mp4a.40.2`).
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

/// `GetAudioObjectType()` (§1.6.2.1.1).
fn read_object_type(r: &mut BitReader<'_>) -> Result<u32, CodecError> {
    let object_type = r.bits(5)?; // audioObjectType
    if object_type == OBJECT_TYPE_ESCAPE {
        return Ok(32 + r.bits(6)?); // audioObjectTypeExt
    }
    if object_type == 0 {
        return Err(CodecError::invalid(
            "AudioSpecificConfig audioObjectType",
            "0 (null object)",
        ));
    }
    Ok(object_type)
}

/// `samplingFrequencyIndex` and, for index 15, the explicit 24-bit `samplingFrequency`.
fn read_frequency(r: &mut BitReader<'_>) -> Result<u32, CodecError> {
    const CTX: &str = "AudioSpecificConfig samplingFrequencyIndex";
    let index = r.bits(4)?;
    let rate = if index == EXPLICIT_FREQUENCY_INDEX {
        r.bits(24)? // samplingFrequency
    } else {
        *SAMPLING_FREQUENCIES
            .get(index as usize)
            .ok_or_else(|| CodecError::invalid(CTX, format!("reserved index {index}")))?
    };
    if rate == 0 {
        return Err(CodecError::invalid(CTX, "sampling frequency 0"));
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lc_48k_stereo_with_sbr_sync_extension() {
        // What ffmpeg's AAC encoder writes: LC, index 3 (48 kHz), 2 channels, then 0x2b7 sync ext.
        let c = AacConfig::parse(&[0x11, 0x90, 0x56, 0xe5, 0x00]).unwrap();
        assert_eq!(c.codec_string(), "mp4a.40.2");
        assert_eq!(
            (c.sample_rate, c.channels, c.frame_length),
            (48000, 2, 1024)
        );
    }

    #[test]
    fn escape_object_type_and_explicit_frequency() {
        // audioObjectType 31 + ext 0 = 32 (not GA): unsupported, but parsed without panic.
        assert!(matches!(
            AacConfig::parse(&[0xf8, 0x00, 0x00]),
            Err(CodecError::Unsupported { .. })
        ));
        // LC, index 15, 24-bit 22050 (0x005622), 1 channel, frameLengthFlag 1.
        // bits: 00010 1111 000000000101011000100010 0001 1
        let c = AacConfig::parse(&[0x17, 0x80, 0x2b, 0x11, 0x0c]).unwrap();
        assert_eq!(
            (c.object_type, c.sample_rate, c.channels, c.frame_length),
            (2, 22050, 1, 960)
        );
    }

    #[test]
    fn he_aac_explicit() {
        // SBR(5), 24 kHz (6), 2 ch, ext 48 kHz (3), core LC (2), frameLengthFlag 0.
        // bits: 00101 0110 0010 0011 00010 0 → 0x2b 0x11 0x88 0x00
        let c = AacConfig::parse(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(c.codec_string(), "mp4a.40.5");
        assert_eq!(
            (c.sample_rate, c.extension_sample_rate, c.channels),
            (24000, Some(48000), 2)
        );
    }
}
