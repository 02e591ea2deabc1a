//! Codecs and containers as pure functions over bytes. Nothing here does I/O or async.

use std::fmt;

/// A Matroska / KVS track number (`TrackNumber`, element 0xD7). KVS numbers tracks from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrackNumber(pub u64);

impl fmt::Display for TrackNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
