//! Domain types of the archive. Bare integers and strings stop at the edges.

use crate::Continuity;
use bytes::Bytes;
use media::timeline::TrackSpan;
use media::TrackNumber;
use std::collections::BTreeMap;
use std::fmt;

/// Milliseconds since the Unix epoch. KVS reports server and producer timestamps with
/// millisecond precision (docs/wire.md#listfragments).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }
    pub fn millis(self) -> i64 {
        self.0
    }
    /// Epoch seconds as a JSON number (docs/wire.md#responses: timestamps are epoch-second numbers).
    pub fn as_epoch_seconds(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

/// Width of every fragment number, so text order is numeric order (docs/choices.md#fragment-numbers: real ones are 47 digits).
pub const FRAGMENT_NUMBER_DIGITS: usize = 47;

/// A KVS fragment number: a decimal string, strictly increasing per stream in ingest order.
///
/// Layout (docs/choices.md#fragment-numbers; AWS only fixes "decimal, increasing"): the number is
/// `server_timestamp_ms * 10^8 + per-stream sequence`, printed zero-padded to 47 digits. A stream's
/// ingest is owned by one node at a time, so (timestamp, sequence) is unique across nodes; the
/// catalog guarantees monotonicity by taking `max(previous + 1, candidate)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FragmentNumber(pub u128);

impl FragmentNumber {
    pub const SEQUENCE_SPACE: u128 = 100_000_000;

    pub fn candidate(server_timestamp: Timestamp) -> Self {
        FragmentNumber(server_timestamp.0.max(0) as u128 * Self::SEQUENCE_SPACE)
    }

    /// The number for a fragment arriving at `server_timestamp` after `last`: strictly greater
    /// than `last`, and derived from the clock so numbers stay unique across restarts and nodes.
    pub fn next(last: Option<FragmentNumber>, server_timestamp: Timestamp) -> Self {
        let candidate = Self::candidate(server_timestamp);
        match last {
            Some(l) if l >= candidate => FragmentNumber(l.0 + 1),
            _ => candidate,
        }
    }

    /// Parses a decimal fragment number as clients send it (`^[0-9]+$`, 1..128 chars).
    pub fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let trimmed = s.trim_start_matches('0');
        if trimmed.len() > 39 {
            return None;
        }
        if trimmed.is_empty() {
            return Some(FragmentNumber(0));
        }
        trimmed.parse::<u128>().ok().map(FragmentNumber)
    }
}

impl fmt::Display for FragmentNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:0width$}", self.0, width = FRAGMENT_NUMBER_DIGITS)
    }
}

/// Catalog-internal identifier of a stream incarnation (a deleted and recreated stream gets a new id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub i64);

/// Catalog-internal identifier of a codec-config row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CodecConfigId(pub i64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamStatus {
    Creating,
    Active,
    Updating,
    Deleting,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Creating => "CREATING",
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Updating => "UPDATING",
            StreamStatus::Deleting => "DELETING",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "CREATING" => StreamStatus::Creating,
            "ACTIVE" => StreamStatus::Active,
            "UPDATING" => StreamStatus::Updating,
            "DELETING" => StreamStatus::Deleting,
            _ => return None,
        })
    }
}

/// One stream as the catalog keeps it (docs/architecture.md#data-directory).
#[derive(Clone, Debug, PartialEq)]
pub struct StreamRecord {
    pub id: StreamId,
    pub name: String,
    pub arn: String,
    pub device_name: Option<String>,
    pub media_type: Option<String>,
    pub kms_key_id: String,
    /// Changes on every metadata update (docs/choices.md#stream-version: `Version` 1..64 `[a-zA-Z0-9]+`).
    pub version: String,
    pub status: StreamStatus,
    pub creation_time: Timestamp,
    pub data_retention_hours: u32,
    pub storage_tier: String,
    pub tags: BTreeMap<String, String>,
}

/// What CreateStream stores; the catalog assigns id, and the caller computes ARN and version.
#[derive(Clone, Debug)]
pub struct NewStream {
    pub name: String,
    pub arn: String,
    pub device_name: Option<String>,
    pub media_type: Option<String>,
    pub kms_key_id: String,
    pub version: String,
    pub creation_time: Timestamp,
    pub data_retention_hours: u32,
    pub storage_tier: String,
    pub tags: BTreeMap<String, String>,
}

/// A track's codec configuration; a new row is written whenever a track's codec private data changes.
#[derive(Clone, Debug, PartialEq)]
pub struct CodecConfig {
    pub track: TrackNumber,
    /// Matroska TrackType: 1 video, 2 audio, others stored as given.
    pub track_type: u8,
    pub codec_id: String,
    pub codec_private: Bytes,
    pub track_name: Option<String>,
    pub pixel_width: Option<u32>,
    pub pixel_height: Option<u32>,
    pub sampling_frequency: Option<f64>,
    pub channels: Option<u32>,
}

/// One sample (frame) of a fragment track, in ingest (decode) order: exactly what the timeline
/// code needs (`media::timeline::StoredSample`), stored as it is so playback and ingest read the
/// same type without a copy.
pub type SampleEntry = media::timeline::StoredSample;

/// One track's part of a fragment: its samples are contiguous in the fragment's media bytes,
/// byte-identical to what was ingested (docs/architecture.md#data-directory).
#[derive(Clone, Debug, PartialEq)]
pub struct FragmentTrack {
    pub track: TrackNumber,
    pub codec_config: CodecConfigId,
    /// Offset of the first sample relative to the start of the fragment's media bytes.
    pub data_offset: u64,
    pub data_len: u64,
    pub samples: Vec<SampleEntry>,
}

/// Where a fragment's media bytes live in a `MediaStore`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaLocation {
    pub segment: u64,
    pub offset: u64,
    pub len: u64,
}

/// A fragment ready to be committed to the catalog.
#[derive(Clone, Debug, PartialEq)]
pub struct NewFragment {
    pub stream: StreamId,
    /// Assigned by the stream's ingest owner when the fragment's first byte arrives (so BUFFERING
    /// acks can carry it); the catalog refuses a number not above the stream's last one.
    pub number: FragmentNumber,
    pub producer_timestamp: Timestamp,
    pub server_timestamp: Timestamp,
    pub duration_ms: u64,
    /// The Cluster Timecode as the producer sent it, in ms: the producer timestamp with ABSOLUTE
    /// timecodes, the offset from its start timestamp with RELATIVE ones. GetMedia writes it back
    /// (docs/wire.md#getmedia).
    pub cluster_timecode_ms: i64,
    pub tracks: Vec<FragmentTrack>,
    pub tags: Vec<(String, String)>,
    pub media: MediaLocation,
    /// The writer lease epoch the fragment is committed under: when `Some`, the catalog refuses
    /// the row ([`crate::StoreError::WriterLeaseLost`]) unless it is still the stream's current
    /// epoch, checked in the committing transaction (docs/architecture.md#writer-lease). `None`
    /// skips the check (a single process that holds no leases).
    pub writer_epoch: Option<u64>,
    /// The ingest knows this fragment does not continue the one before it, whatever their times
    /// say: LL-HLS listed parts of a fragment between them that then failed
    /// (docs/architecture.md#low-latency-hls). Every gap flag is set ([`crate::Continuity`]).
    pub begins_discontinuity: bool,
}

/// A stream's writer lease: who may commit fragments to it (docs/architecture.md#writer-lease).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WriterLease {
    pub stream: StreamId,
    pub epoch: u64,
}

/// What one renewal of [`crate::Catalog::renew_writer_leases`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseRenewal {
    /// Extended to the TTL from now.
    Renewed,
    /// Still the stream's current epoch, but its row was locked by a transaction in flight (a
    /// commit of the holder's own fragments, mostly): not extended this time, and not waited for,
    /// so a batch of renewals never waits on, nor deadlocks with, the commits it renews for.
    Busy,
    /// Another epoch took the stream over, or the stream is gone.
    Lost,
}

/// What changed in a catalog, as [`crate::Catalog::changes`] reports it: for cache invalidation
/// across nodes and live-edge wake-ups (docs/architecture.md#playback-path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatalogChange {
    /// Fragments were committed to the stream.
    Fragments(StreamId),
    /// The stream record changed or went, or retention deleted some of its fragments.
    Stream(StreamId),
    /// Notifications may have been missed: treat everything as changed.
    Unknown,
}

/// A stored fragment's catalog row.
#[derive(Clone, Debug, PartialEq)]
pub struct FragmentRecord {
    pub stream: StreamId,
    pub number: FragmentNumber,
    /// Gapless per-stream ingest index (0, 1, 2, …): a LIVE playlist's EXT-X-MEDIA-SEQUENCE.
    pub sequence: u64,
    pub continuity: Continuity,
    pub producer_timestamp: Timestamp,
    pub server_timestamp: Timestamp,
    pub duration_ms: u64,
    pub size_bytes: u64,
    /// [`NewFragment::cluster_timecode_ms`]; `None` in rows stored before it was kept.
    pub cluster_timecode_ms: Option<i64>,
    pub tracks: Vec<FragmentTrack>,
    pub tags: Vec<(String, String)>,
    pub media: MediaLocation,
}

/// One track of a [`FragmentSummary`]: which codec config it uses and what its length follows
/// from, without its sample table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackSummary {
    pub track: TrackNumber,
    pub codec_config: CodecConfigId,
    /// What `EXTINF` needs ([`media::timeline::TrackSpan::duration`]).
    pub span: TrackSpan,
}

/// What a playlist or a ListFragments page needs of a fragment: its row without the per-sample
/// tables, tags and media location. Listing queries ([`crate::Catalog::query_fragment_summaries`],
/// [`crate::Catalog::latest_fragment_summaries`]) return these; the full [`FragmentRecord`] is
/// read per fragment, when its media is served.
#[derive(Clone, Debug, PartialEq)]
pub struct FragmentSummary {
    pub stream: StreamId,
    pub number: FragmentNumber,
    /// As [`FragmentRecord::sequence`].
    pub sequence: u64,
    pub continuity: Continuity,
    pub producer_timestamp: Timestamp,
    pub server_timestamp: Timestamp,
    pub duration_ms: u64,
    pub size_bytes: u64,
    pub tracks: Vec<TrackSummary>,
}

impl FragmentTrack {
    /// This track without its sample table.
    pub fn summary(&self) -> TrackSummary {
        TrackSummary {
            track: self.track,
            codec_config: self.codec_config,
            span: TrackSpan::of(&self.samples),
        }
    }
}

impl FragmentRecord {
    /// This fragment as the listing queries return it.
    pub fn summary(&self) -> FragmentSummary {
        FragmentSummary {
            stream: self.stream,
            number: self.number,
            sequence: self.sequence,
            continuity: self.continuity,
            producer_timestamp: self.producer_timestamp,
            server_timestamp: self.server_timestamp,
            duration_ms: self.duration_ms,
            size_bytes: self.size_bytes,
            tracks: self.tracks.iter().map(FragmentTrack::summary).collect(),
        }
    }
}

/// A fragment's start timestamps, of a full [`FragmentRecord`] or a [`FragmentSummary`].
pub trait FragmentTimes {
    fn producer_timestamp(&self) -> Timestamp;
    fn server_timestamp(&self) -> Timestamp;
}

impl FragmentTimes for FragmentRecord {
    fn producer_timestamp(&self) -> Timestamp {
        self.producer_timestamp
    }
    fn server_timestamp(&self) -> Timestamp {
        self.server_timestamp
    }
}

impl FragmentTimes for FragmentSummary {
    fn producer_timestamp(&self) -> Timestamp {
        self.producer_timestamp
    }
    fn server_timestamp(&self) -> Timestamp {
        self.server_timestamp
    }
}

/// Which timestamp a fragment query selects on (docs/wire.md#listfragments, FragmentSelectorType).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampKind {
    Producer,
    Server,
}

/// A page request over fragments whose start timestamp lies in `[start, end]` (both inclusive,
/// docs/wire.md#listfragments), ascending by (timestamp, fragment number), resuming after `after`.
#[derive(Clone, Debug)]
pub struct FragmentQuery {
    pub stream: StreamId,
    pub kind: TimestampKind,
    pub start: Timestamp,
    pub end: Timestamp,
    /// Resume strictly after this (timestamp, fragment number) position.
    pub after: Option<(Timestamp, FragmentNumber)>,
    pub limit: usize,
}
