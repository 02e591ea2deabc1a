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

/// The Matroska codec IDs openkvs plays back (docs/wire.md#media-types): H.264, H.265, AAC.
pub const H264_CODEC_IDS: &[&str] = &["V_MPEG4/ISO/AVC", "V_MPEG/ISO/AVC"];
/// See [`H264_CODEC_IDS`].
pub const H265_CODEC_IDS: &[&str] = &["V_MPEGH/ISO/HEVC", "V_MPEG/ISO/HEVC"];
/// See [`H264_CODEC_IDS`].
pub const AAC_CODEC_ID: &str = "A_AAC";

/// A codec openkvs can package, named by a track's Matroska codec ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodecKind {
    /// H.264 / AVC video.
    H264,
    /// H.265 / HEVC video.
    H265,
    /// AAC audio.
    Aac,
}

impl CodecKind {
    /// The codec of a Matroska codec ID; `None` for any other codec.
    pub fn from_codec_id(id: &str) -> Option<Self> {
        if H264_CODEC_IDS.contains(&id) {
            Some(CodecKind::H264)
        } else if H265_CODEC_IDS.contains(&id) {
            Some(CodecKind::H265)
        } else if id == AAC_CODEC_ID {
            Some(CodecKind::Aac)
        } else {
            None
        }
    }

    /// H.264 or H.265.
    pub fn is_video(self) -> bool {
        !matches!(self, CodecKind::Aac)
    }
}

/// A track's codec with its decoded configuration record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Codec {
    /// H.264 with its `AVCDecoderConfigurationRecord`.
    Avc(AvcConfig),
    /// H.265 with its `HEVCDecoderConfigurationRecord`.
    Hevc(HevcConfig),
    /// AAC with its `AudioSpecificConfig`.
    Aac(AacConfig),
}

impl Codec {
    /// Which codec this is.
    pub fn kind(&self) -> CodecKind {
        match self {
            Codec::Avc(_) => CodecKind::H264,
            Codec::Hevc(_) => CodecKind::H265,
            Codec::Aac(_) => CodecKind::Aac,
        }
    }

    /// The RFC 6381 `CODECS` string (`avc1.640028`, `hvc1.1.6.L93.B0`, `mp4a.40.2`).
    pub fn codec_string(&self) -> String {
        match self {
            Codec::Avc(c) => c.codec_string(),
            Codec::Hevc(c) => c.codec_string(),
            Codec::Aac(c) => c.codec_string(),
        }
    }

    /// H.264 or H.265.
    pub fn is_video(&self) -> bool {
        self.kind().is_video()
    }
}

/// Why a track cannot be played back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrackCodecError {
    /// The codec ID is not one of [`CodecKind`]'s.
    #[error("the codec ID {0} is not supported")]
    UnsupportedCodecId(String),
    /// No CodecPrivate was sent.
    #[error("the codec private data is missing")]
    MissingCodecPrivate,
    /// The CodecPrivate does not parse as the codec's configuration record.
    #[error(transparent)]
    InvalidCodecPrivate(#[from] CodecError),
}

/// The one codec decision for a track (docs/wire.md#media-types): its codec ID must name a codec
/// openkvs packages and its CodecPrivate must parse as that codec's configuration record (avcC /
/// hvcC with a decodable SPS, or an AudioSpecificConfig). Every playback path calls this.
pub fn decode_track(codec_id: &str, codec_private: &[u8]) -> Result<Codec, TrackCodecError> {
    let kind = CodecKind::from_codec_id(codec_id)
        .ok_or_else(|| TrackCodecError::UnsupportedCodecId(codec_id.to_owned()))?;
    if codec_private.is_empty() {
        return Err(TrackCodecError::MissingCodecPrivate);
    }
    Ok(match kind {
        CodecKind::H264 => Codec::Avc(AvcConfig::parse(codec_private)?),
        CodecKind::H265 => Codec::Hevc(HevcConfig::parse(codec_private)?),
        CodecKind::Aac => Codec::Aac(AacConfig::parse(codec_private)?),
    })
}

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
