//! MPEG-DASH playback (docs/wire.md#getdashstreamingsessionurl, docs/wire.md#dash-resources).
//!
//! A DASH session is an HLS session with another front: [`api`] checks the request with the
//! same code as GetHLSStreamingSessionURL (`hls::api::SessionInput`) and seals the same
//! [`crate::hls::Session`], marked [`crate::hls::Protocol::Dash`]; [`serve`] lists the same window
//! of fragments (`hls::serve::playable_window`) as an MPD written by [`mpd`], and serves the init
//! and media segments with the HLS fMP4 code.

pub mod api;
pub mod mpd;
pub mod serve;
