//! Fragmented MP4.
