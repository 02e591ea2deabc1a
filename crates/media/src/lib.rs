//! Codecs and containers as pure functions over bytes. Nothing here does I/O or async.
//!
//! - [`ebml`]: EBML (RFC 8794) variable-size integers, element headers, data types and IDs.
//! - [`mkv`]: the incremental Matroska (RFC 9559) reader for PutMedia bodies, and a writer.
//! - [`codec`]: codec private data (avcC, hvcC, AudioSpecificConfig) → CODECS strings, picture size.
//! - [`timeline`]: decode/presentation timing of one track of one stored fragment.
//! - [`fmp4`]: fragmented MP4 init and media segment headers for HLS.
//! - [`mp4`]: the header of a progressive MP4 file around stored sample bytes, for GetClip.
//! - [`ts`]: MPEG-2 transport stream segments for HLS `MPEG_TS` sessions.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod ebml;
pub mod fmp4;
mod isobmff;
pub mod mkv;
pub mod mp4;
pub mod parts;
pub mod timeline;
pub mod ts;

use std::fmt;

/// A Matroska / KVS track number (`TrackNumber`, element 0xD7). KVS numbers tracks from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrackNumber(pub u64);

impl fmt::Display for TrackNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
