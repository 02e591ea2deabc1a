//! Codec private data: what HLS needs from the bytes a producer put in Matroska `CodecPrivate`.
//!
//! - [`avc`]: H.264 `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3) and the SPS inside it
//!   (ITU-T H.264 §7.3.2.1.1) → `avc1.PPCCLL` (RFC 6381 §3.3) and the picture size.
//! - [`hevc`]: H.265 `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §8.3.3) and its SPS
//!   (ITU-T H.265 §7.3.2.2) → `hvc1.…` (ISO/IEC 14496-15 Annex E.3) and the picture size.
//! - [`aac`]: MPEG-4 `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1) → `mp4a.40.N`, rate, channels.
//!
//! The SPS parsers are our own (about 150 lines with a small bit reader) rather than the `h264-reader` crate:
//! H.265 needs the same exp-Golomb reader anyway and `h264-reader` has no H.265; we need four SPS
//! fields, not a full decoder front end; and a parser here keeps `media` free of dependencies that
//! could panic on hostile input (every read here is bounds-checked and returns [`CodecError`]).
//!
//! No function in this module panics, whatever the input (property-tested).

pub mod aac;
pub mod avc;
pub(crate) mod bits;
pub mod hevc;

pub use aac::AacConfig;
pub use avc::AvcConfig;
pub use hevc::HevcConfig;

/// Why codec private data cannot be used. `context` names the structure or syntax element being
/// read (e.g. `"H.264 SPS pic_width_in_mbs_minus1"`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The data ended before `context` was complete.
    #[error("codec private data truncated in {context}")]
    Truncated {
        /// What was being read.
        context: &'static str,
    },
    /// Well-formed, but a feature this server does not handle (e.g. an AAC program_config_element).
    #[error("unsupported codec private data in {context}: {detail}")]
    Unsupported {
        /// What was being read.
        context: &'static str,
        /// The value found.
        detail: String,
    },
    /// A value the specification forbids or that cannot describe a playable stream.
    #[error("invalid codec private data in {context}: {detail}")]
    Invalid {
        /// What was being read.
        context: &'static str,
        /// The value found.
        detail: String,
    },
}

impl CodecError {
    pub(crate) fn invalid(context: &'static str, detail: impl Into<String>) -> Self {
        CodecError::Invalid {
            context,
            detail: detail.into(),
        }
    }

    pub(crate) fn unsupported(context: &'static str, detail: impl Into<String>) -> Self {
        CodecError::Unsupported {
            context,
            detail: detail.into(),
        }
    }
}

/// Largest picture side accepted from an SPS (H.264 level 6.2 allows 8192x4320 — and 16888 for
/// odd aspect ratios; anything larger is a corrupt SPS, not a camera).
pub const MAX_PICTURE_SIDE: u32 = 16_888;

/// Checks a parsed picture size against [`MAX_PICTURE_SIDE`] and zero.
pub(crate) fn check_picture_size(
    context: &'static str,
    width: u64,
    height: u64,
) -> Result<(u32, u32), CodecError> {
    let limit = u64::from(MAX_PICTURE_SIDE);
    if width == 0 || height == 0 || width > limit || height > limit {
        return Err(CodecError::invalid(
            context,
            format!("picture size {width}x{height}"),
        ));
    }
    // Both are ≤ MAX_PICTURE_SIDE, so the conversions cannot fail.
    Ok((width as u32, height as u32))
}
