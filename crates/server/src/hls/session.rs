//! What an HLS session URL grants, decided once at GetHLSStreamingSessionURL time and carried,
//! sealed, in the `SessionToken` (docs/choices.md#session-tokens; [`super::token`]).
//!
//! The binary form ([`Session::encode`] / [`Session::decode`]) is what the token encrypts. It is
//! compact (about 40 bytes plus the stream name) so session URLs stay short:
//!
//! ```text
//! flags  u8   bits 0-1 mode (0 LIVE, 1 LIVE_REPLAY, 2 ON_DEMAND), bit 2 selector (0 SERVER,
//!             1 PRODUCER), bit 3 container (0 FRAGMENTED_MP4, 1 MPEG_TS), bits 4-5 discontinuity
//!             (0 ALWAYS, 1 NEVER, 2 ON_DISCONTINUITY), bit 6 display timestamps, bit 7 has start
//! flags2 u8   bit 0 has end, bit 1 protocol (0 HLS, 1 DASH), bit 2 display fragment numbers
//!             (DASH); other bits must be zero
//! stream_id         zigzag LEB128
//! stream_creation   zigzag LEB128 (epoch ms)
//! stream_name       LEB128 length, UTF-8 bytes
//! start, end        zigzag LEB128 (epoch ms), each only when its flag is set
//! max_fragments     LEB128
//! created           zigzag LEB128 (epoch ms)
//! expires           LEB128 (ms after `created`)
//! origin            zigzag LEB128 (ms after `created`)
//! wall_offset       zigzag LEB128 (ms), DASH only
//! ```
//! HLS tokens sealed before DASH existed have flags2 bits 1-2 clear and decode unchanged.
//! LEB128 and zigzag are [`store::varint`]'s. The token's version byte covers this layout: a change
//! here needs a new token version.

use store::{varint, StreamId, Timestamp, TimestampKind};

/// `PlaybackMode` of GetHLSStreamingSessionURL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlaybackMode {
    Live,
    LiveReplay,
    OnDemand,
}

impl PlaybackMode {
    pub const WIRE: &'static [&'static str] = &["LIVE", "LIVE_REPLAY", "ON_DEMAND"];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "LIVE" => PlaybackMode::Live,
            "LIVE_REPLAY" => PlaybackMode::LiveReplay,
            "ON_DEMAND" => PlaybackMode::OnDemand,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PlaybackMode::Live => "LIVE",
            PlaybackMode::LiveReplay => "LIVE_REPLAY",
            PlaybackMode::OnDemand => "ON_DEMAND",
        }
    }

    /// MaxMediaPlaylistFragmentResults when the request gives none (model doc).
    pub fn default_max_fragments(self) -> u32 {
        match self {
            PlaybackMode::Live | PlaybackMode::LiveReplay => 5,
            PlaybackMode::OnDemand => 1000,
        }
    }
}

/// `ContainerFormat` of GetHLSStreamingSessionURL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContainerFormat {
    FragmentedMp4,
    MpegTs,
}

impl ContainerFormat {
    pub const WIRE: &'static [&'static str] = &["FRAGMENTED_MP4", "MPEG_TS"];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "FRAGMENTED_MP4" => ContainerFormat::FragmentedMp4,
            "MPEG_TS" => ContainerFormat::MpegTs,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ContainerFormat::FragmentedMp4 => "FRAGMENTED_MP4",
            ContainerFormat::MpegTs => "MPEG_TS",
        }
    }
}

/// `DiscontinuityMode` of GetHLSStreamingSessionURL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiscontinuityMode {
    /// A discontinuity before every fragment.
    Always,
    /// None at all.
    Never,
    /// Where consecutive fragments have a gap or overlap of more than 50 ms.
    OnDiscontinuity,
}

impl DiscontinuityMode {
    pub const WIRE: &'static [&'static str] = &["ALWAYS", "NEVER", "ON_DISCONTINUITY"];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ALWAYS" => DiscontinuityMode::Always,
            "NEVER" => DiscontinuityMode::Never,
            "ON_DISCONTINUITY" => DiscontinuityMode::OnDiscontinuity,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DiscontinuityMode::Always => "ALWAYS",
            DiscontinuityMode::Never => "NEVER",
            DiscontinuityMode::OnDiscontinuity => "ON_DISCONTINUITY",
        }
    }

    /// The default by selector type (model doc): SERVER_TIMESTAMP → ALWAYS, PRODUCER → NEVER.
    pub fn default_for(selector: TimestampKind) -> Self {
        match selector {
            TimestampKind::Server => DiscontinuityMode::Always,
            TimestampKind::Producer => DiscontinuityMode::Never,
        }
    }
}

/// Which API minted the session: its token opens only that API's resources (an HLS token on a
/// `/dash/v1/` resource is refused like any invalid token, docs/wire.md#dash-resources).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Hls,
    Dash,
}

/// Everything a session URL grants. Built by GetHLSStreamingSessionURL, sealed into the token,
/// and handed back by [`super::token::open`] / [`super::authorize`] to the GET handlers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The stream incarnation: a deleted and recreated stream (new id, new creation time) does
    /// not inherit sessions.
    pub stream_id: StreamId,
    pub stream_creation: Timestamp,
    pub stream_name: String,
    pub mode: PlaybackMode,
    pub selector: TimestampKind,
    /// Inclusive bounds on the selected timestamp of a fragment's start. `None` for LIVE;
    /// `end` may be `None` for LIVE_REPLAY (the session follows ingest until it expires).
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub container: ContainerFormat,
    pub discontinuity: DiscontinuityMode,
    /// DisplayFragmentTimestamp=ALWAYS: `EXT-X-PROGRAM-DATE-TIME` on every segment.
    pub display_timestamp: bool,
    /// MaxMediaPlaylistFragmentResults (1..=5000).
    pub max_fragments: u32,
    /// When GetHLSStreamingSessionURL ran (LIVE_REPLAY paces from here).
    pub created: Timestamp,
    /// No resource is served at or after this instant.
    pub expires: Timestamp,
    /// Zero of the session's media timeline: a fragment's tfdt is its selected timestamp minus
    /// this. Players that pace by timestamps (GStreamer with a synchronised sink) wait for
    /// absolute epoch times otherwise. Set at creation so every resource agrees.
    pub origin: Timestamp,
    /// HLS or DASH (GetHLSStreamingSessionURL or GetDASHStreamingSessionURL).
    pub protocol: Protocol,
    /// DASH DisplayFragmentNumber=ALWAYS: `kvs:fn` on every `S` element (always false for HLS).
    pub display_fragment_number: bool,
    /// DASH: the server clock minus the producer clock (ms) at the session's first fragment, so
    /// a dynamic MPD's `availabilityStartTime` puts the producer-time media timeline on the
    /// server's wall clock (docs/choices.md#dash-timeline). 0 for HLS.
    pub wall_offset_ms: i64,
}

/// Why a plaintext does not decode (after authentication this means a version mismatch or a bug).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError;

impl Session {
    /// The compact binary form (layout in the module doc).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + self.stream_name.len());
        let mode = match self.mode {
            PlaybackMode::Live => 0u8,
            PlaybackMode::LiveReplay => 1,
            PlaybackMode::OnDemand => 2,
        };
        let selector = match self.selector {
            TimestampKind::Server => 0u8,
            TimestampKind::Producer => 1,
        };
        let container = match self.container {
            ContainerFormat::FragmentedMp4 => 0u8,
            ContainerFormat::MpegTs => 1,
        };
        let discontinuity = match self.discontinuity {
            DiscontinuityMode::Always => 0u8,
            DiscontinuityMode::Never => 1,
            DiscontinuityMode::OnDiscontinuity => 2,
        };
        out.push(
            mode | selector << 2
                | container << 3
                | discontinuity << 4
                | (self.display_timestamp as u8) << 6
                | (self.start.is_some() as u8) << 7,
        );
        let dash = self.protocol == Protocol::Dash;
        out.push(
            self.end.is_some() as u8
                | (dash as u8) << 1
                | (self.display_fragment_number as u8) << 2,
        );
        varint::put_i64(&mut out, self.stream_id.0);
        varint::put_i64(&mut out, self.stream_creation.0);
        varint::put_u64(&mut out, self.stream_name.len() as u64);
        out.extend_from_slice(self.stream_name.as_bytes());
        if let Some(start) = self.start {
            varint::put_i64(&mut out, start.0);
        }
        if let Some(end) = self.end {
            varint::put_i64(&mut out, end.0);
        }
        varint::put_u64(&mut out, self.max_fragments as u64);
        varint::put_i64(&mut out, self.created.0);
        varint::put_u64(
            &mut out,
            self.expires.0.saturating_sub(self.created.0).max(0) as u64,
        );
        varint::put_i64(&mut out, self.origin.0.saturating_sub(self.created.0));
        if dash {
            varint::put_i64(&mut out, self.wall_offset_ms);
        }
        out
    }

    /// Parses [`Session::encode`]'s output; anything else (trailing bytes included) is an error.
    pub fn decode(bytes: &[u8]) -> Result<Session, DecodeError> {
        let mut r = Reader(bytes);
        let flags = r.byte()?;
        let flags2 = r.byte()?;
        if flags2 & !0b111 != 0 {
            return Err(DecodeError);
        }
        let mode = match flags & 0b11 {
            0 => PlaybackMode::Live,
            1 => PlaybackMode::LiveReplay,
            2 => PlaybackMode::OnDemand,
            _ => return Err(DecodeError),
        };
        let selector = match (flags >> 2) & 1 {
            0 => TimestampKind::Server,
            _ => TimestampKind::Producer,
        };
        let container = match (flags >> 3) & 1 {
            0 => ContainerFormat::FragmentedMp4,
            _ => ContainerFormat::MpegTs,
        };
        let discontinuity = match (flags >> 4) & 0b11 {
            0 => DiscontinuityMode::Always,
            1 => DiscontinuityMode::Never,
            2 => DiscontinuityMode::OnDiscontinuity,
            _ => return Err(DecodeError),
        };
        let display_timestamp = (flags >> 6) & 1 == 1;
        let has_start = (flags >> 7) & 1 == 1;
        let has_end = flags2 & 1 == 1;
        let protocol = match (flags2 >> 1) & 1 {
            0 => Protocol::Hls,
            _ => Protocol::Dash,
        };
        let display_fragment_number = (flags2 >> 2) & 1 == 1;
        if protocol == Protocol::Hls && display_fragment_number {
            return Err(DecodeError);
        }
        let stream_id = StreamId(r.signed()?);
        let stream_creation = Timestamp(r.signed()?);
        let name_len = usize::try_from(r.unsigned()?).map_err(|_| DecodeError)?;
        let stream_name = String::from_utf8(r.take(name_len)?.to_vec()).map_err(|_| DecodeError)?;
        let start = if has_start {
            Some(Timestamp(r.signed()?))
        } else {
            None
        };
        let end = if has_end {
            Some(Timestamp(r.signed()?))
        } else {
            None
        };
        let max_fragments = u32::try_from(r.unsigned()?).map_err(|_| DecodeError)?;
        let created = Timestamp(r.signed()?);
        let lifetime = i64::try_from(r.unsigned()?).map_err(|_| DecodeError)?;
        let origin = Timestamp(created.0.saturating_add(r.signed()?));
        let wall_offset_ms = match protocol {
            Protocol::Hls => 0,
            Protocol::Dash => r.signed()?,
        };
        if !r.0.is_empty() {
            return Err(DecodeError);
        }
        Ok(Session {
            stream_id,
            stream_creation,
            stream_name,
            mode,
            selector,
            start,
            end,
            container,
            discontinuity,
            display_timestamp,
            max_fragments,
            created,
            expires: Timestamp(created.0.saturating_add(lifetime)),
            origin,
            protocol,
            display_fragment_number,
            wall_offset_ms,
        })
    }

    /// Where a fragment starts on the session's media timeline (tfdt). The selected timestamp,
    /// except that a SERVER_TIMESTAMP session with a discontinuity before every fragment (the
    /// default, ALWAYS) lays fragments out by producer time: the player resets its timeline at
    /// each fragment anyway, and arrival times (all but equal after a fast upload) would stack
    /// fragments on one instant, which some players (GStreamer's hlsdemux2) cannot preroll.
    pub fn timeline_timestamp(&self, f: &impl store::FragmentTimes) -> Timestamp {
        if self.discontinuity == DiscontinuityMode::Always {
            f.producer_timestamp()
        } else {
            self.selected_timestamp(f)
        }
    }

    /// The timestamp this session selects on for a fragment (per FragmentSelectorType).
    pub fn selected_timestamp(&self, f: &impl store::FragmentTimes) -> Timestamp {
        match self.selector {
            TimestampKind::Server => f.server_timestamp(),
            TimestampKind::Producer => f.producer_timestamp(),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.0.split_first().ok_or(DecodeError)?;
        self.0 = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn unsigned(&mut self) -> Result<u64, DecodeError> {
        let (v, len) = varint::read_u64(self.0).map_err(|_| DecodeError)?;
        self.0 = &self.0[len..];
        Ok(v)
    }

    fn signed(&mut self) -> Result<i64, DecodeError> {
        self.unsigned().map(varint::unzigzag)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Session {
        Session {
            stream_id: StreamId(42),
            stream_creation: Timestamp(1_704_067_200_123),
            stream_name: "front-door.cam_1".into(),
            mode: PlaybackMode::OnDemand,
            selector: TimestampKind::Server,
            start: Some(Timestamp(1_704_067_260_000)),
            end: Some(Timestamp(1_704_070_860_500)),
            container: ContainerFormat::FragmentedMp4,
            discontinuity: DiscontinuityMode::Always,
            display_timestamp: true,
            max_fragments: 1000,
            created: Timestamp(1_704_071_000_000),
            expires: Timestamp(1_704_071_300_000),
            origin: Timestamp(1_704_067_260_480),
            protocol: Protocol::Hls,
            display_fragment_number: false,
            wall_offset_ms: 0,
        }
    }

    #[test]
    fn round_trips_every_option() {
        let base = sample();
        let mut variants = vec![base.clone()];
        for mode in [
            PlaybackMode::Live,
            PlaybackMode::LiveReplay,
            PlaybackMode::OnDemand,
        ] {
            for selector in [TimestampKind::Server, TimestampKind::Producer] {
                for container in [ContainerFormat::FragmentedMp4, ContainerFormat::MpegTs] {
                    for discontinuity in [
                        DiscontinuityMode::Always,
                        DiscontinuityMode::Never,
                        DiscontinuityMode::OnDiscontinuity,
                    ] {
                        for (start, end) in [
                            (None, None),
                            (Some(Timestamp(-5)), None),
                            (Some(Timestamp(0)), Some(Timestamp(i64::MAX))),
                        ] {
                            variants.push(Session {
                                mode,
                                selector,
                                container,
                                discontinuity,
                                start,
                                end,
                                display_timestamp: start.is_none(),
                                stream_id: StreamId(i64::MAX),
                                stream_name: "x".repeat(256),
                                ..base.clone()
                            });
                        }
                    }
                }
            }
        }
        // DASH sessions: the protocol, kvs:fn and the wall-clock offset round-trip too.
        for (display_fragment_number, wall_offset_ms) in
            [(false, 0), (true, -1234), (true, i64::MAX)]
        {
            variants.push(Session {
                protocol: Protocol::Dash,
                display_fragment_number,
                wall_offset_ms,
                ..base.clone()
            });
        }
        for s in variants {
            assert_eq!(Session::decode(&s.encode()), Ok(s.clone()), "{s:?}");
        }
    }

    #[test]
    fn is_compact() {
        let s = sample();
        assert!(
            s.encode().len() <= 40 + s.stream_name.len(),
            "{}",
            s.encode().len()
        );
    }

    #[test]
    fn rejects_truncated_and_trailing_bytes() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert_eq!(Session::decode(&bytes[..n]), Err(DecodeError), "{n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Session::decode(&longer), Err(DecodeError));
        let mut bad_flags = bytes;
        bad_flags[1] |= 0x80;
        assert_eq!(Session::decode(&bad_flags), Err(DecodeError));
        // kvs:fn is a DASH option: an HLS session with it is not one this server sealed.
        let mut hls_with_fn = sample().encode();
        hls_with_fn[1] |= 0b100;
        assert_eq!(Session::decode(&hls_with_fn), Err(DecodeError));
    }
}
