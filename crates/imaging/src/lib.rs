//! Still images from stored video frames, for GetImages (docs/wire.md#getimages).
//!
//! - [`libav`]: FFmpeg's libavcodec, loaded at run time with `dlopen` (docs/choices.md#getimages-decoder
//!   says why not linked at build time and not a process per image), decodes one group of
//!   pictures at a time and hands back the frames asked for, converted to RGB.
//! - [`picture`]: the pure part: Y′CbCr → RGB, the output size, scaling (`fast_image_resize`) and
//!   JPEG / PNG encoding (`jpeg-encoder`, `png`).
//! - [`annexb`]: the stored length-prefixed NAL units (MP4 / Matroska form) as the Annex B byte
//!   stream the decoder reads, parameter sets in band.

pub mod annexb;
pub mod libav;
pub mod picture;

/// The video codecs GetImages decodes (the track-1 codecs openkvs stores).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    H265,
}
