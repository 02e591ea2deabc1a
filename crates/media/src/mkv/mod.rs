//! Incremental Matroska (RFC 9559) reader for PutMedia bodies, and a small writer to craft them.
//!
//! [`MkvReader`] is fed chunks as they arrive ([`MkvReader::push`]) and hands out [`Event`]s
//! ([`MkvReader::next_event`]) as soon as the bytes for them are present. It never buffers a
//! whole body: Clusters and Segments are streamed, elements that are not needed are discarded
//! as they pass, and only these are held whole until complete: the EBML header, `Info`,
//! `Tracks` and `Tags` (each at most [`ReaderLimits::max_header_bytes`]) and one `SimpleBlock`
//! or `BlockGroup` (about [`ReaderLimits::max_frame_bytes`]). Frame data are `Bytes` slices of
//! the pushed chunks; a block that straddles chunks is copied once into one buffer.
//!
//! The events depend only on the bytes, never on how they were split into chunks. Callers
//! should drain `next_event` until `Ok(None)` before pushing the next chunk: then the reader
//! holds at most one incomplete element plus one chunk.
//!
//! After an error the reader is failed: every later `next_event`/`finish` returns the same
//! error and pushed input is dropped.

pub mod document;
mod input;
pub mod writer;

use std::borrow::Cow;
use std::collections::VecDeque;

use bytes::Bytes;

use crate::ebml::{self, id, Decoded, ElementHeader, ElementSize};
use crate::TrackNumber;
use input::ChunkQueue;

/// SimpleBlock flags bit 0x80: the frame is a key frame (RFC 9559, "SimpleBlock Structure").
pub const SIMPLE_BLOCK_KEYFRAME: u8 = 0x80;
/// Block flags bits 0x06: the lacing in use (RFC 9559, "Block Lacing").
pub const LACING_MASK: u8 = 0x06;
/// Lacing bits value for Xiph lacing.
pub const LACING_XIPH: u8 = 0x02;
/// Lacing bits value for fixed-size lacing.
pub const LACING_FIXED: u8 = 0x04;
/// Lacing bits value for EBML lacing.
pub const LACING_EBML: u8 = 0x06;
/// `TimestampScale` default: 1 ms ticks (RFC 9559, `\Segment\Info\TimestampScale`).
pub const DEFAULT_TIMECODE_SCALE_NS: u64 = 1_000_000;
/// Room for block headers and BlockGroup siblings on top of `max_frame_bytes` when buffering
/// one `SimpleBlock`/`BlockGroup`.
const BLOCK_OVERHEAD_ALLOWANCE: usize = 4096;

/// Bounds on what the reader buffers. Anything above them is [`MkvError::TooLarge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReaderLimits {
    /// Largest frame (one laced frame or a whole un-laced block payload). Default 50 MiB.
    pub max_frame_bytes: usize,
    /// Largest EBML header, `Info`, `Tracks` or `Tags` element (held whole). Default 4 MiB.
    pub max_header_bytes: usize,
    /// Most `TrackEntry` elements in one `Tracks`. Default 64.
    pub max_tracks: usize,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 50 * 1024 * 1024,
            max_header_bytes: 4 * 1024 * 1024,
            max_tracks: 64,
        }
    }
}

/// What the reader found, in stream order.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// An EBML header + Segment began (the first one or a later one in the same stream);
    /// `offset` is where its EBML header started.
    SegmentStart {
        /// Stream offset of the EBML header (or of the Segment if it had no header of its own).
        offset: u64,
    },
    /// The segment's `Info` and `Tracks`; once per segment, before its first `ClusterStart`.
    Tracks(SegmentInfo),
    /// One segment-level `Tags` element: all its SimpleTags, flattened, in order.
    Tags(Vec<SimpleTag>),
    /// A Cluster's `Timecode` was read.
    ClusterStart {
        /// Cluster timecode in ticks of [`SegmentInfo::timecode_scale_ns`].
        timecode: u64,
        /// Stream offset of the Cluster element's ID.
        offset: u64,
    },
    /// One frame (one per laced frame).
    Frame(Frame),
    /// The Cluster ended (at its size, at a level-0/1 element, or at the end of input).
    ClusterEnd {
        /// Stream offset just past the Cluster's last byte.
        offset: u64,
    },
}

/// `Info` + `Tracks` of one segment.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentInfo {
    /// Nanoseconds per timecode tick (`TimestampScale`, default 1 000 000).
    pub timecode_scale_ns: u64,
    /// The `TrackEntry`s in order.
    pub tracks: Vec<Track>,
}

/// One `TrackEntry` (RFC 9559, `\Segment\Tracks\TrackEntry`).
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    /// `TrackNumber`.
    pub number: TrackNumber,
    /// `TrackUID`.
    pub uid: Option<u64>,
    /// `TrackType` (1 video, 2 audio, ...).
    pub track_type: u8,
    /// `CodecID`, e.g. `V_MPEG4/ISO/AVC`.
    pub codec_id: String,
    /// `CodecPrivate`.
    pub codec_private: Option<Bytes>,
    /// `Name`.
    pub name: Option<String>,
    /// `DefaultDuration` in nanoseconds.
    pub default_duration_ns: Option<u64>,
    /// `Video\PixelWidth`.
    pub pixel_width: Option<u32>,
    /// `Video\PixelHeight`.
    pub pixel_height: Option<u32>,
    /// `Audio\SamplingFrequency` in Hz.
    pub sampling_frequency: Option<f64>,
    /// `Audio\Channels`.
    pub channels: Option<u32>,
}

impl Track {
    /// A track with the given number, type and codec and nothing else set.
    pub fn new(number: u64, track_type: u8, codec_id: &str) -> Self {
        Self {
            number: TrackNumber(number),
            uid: None,
            track_type,
            codec_id: codec_id.to_owned(),
            codec_private: None,
            name: None,
            default_duration_ns: None,
            pixel_width: None,
            pixel_height: None,
            sampling_frequency: None,
            channels: None,
        }
    }
}

/// `TrackType` value for video (RFC 9559).
pub const TRACK_TYPE_VIDEO: u8 = 1;
/// `TrackType` value for audio (RFC 9559).
pub const TRACK_TYPE_AUDIO: u8 = 2;

/// One `SimpleTag` (name and value; nested SimpleTags are skipped).
#[derive(Clone, Debug, PartialEq)]
pub struct SimpleTag {
    /// `TagName`.
    pub name: String,
    /// `TagString` or `TagBinary` (an empty string when neither is present).
    pub value: TagValue,
}

/// The value of a [`SimpleTag`].
#[derive(Clone, Debug, PartialEq)]
pub enum TagValue {
    /// `TagString`.
    String(String),
    /// `TagBinary`.
    Binary(Bytes),
}

/// One frame of a `SimpleBlock` or `Block`.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// The block's track number (not checked against `Tracks`: that is the caller's rule).
    pub track: TrackNumber,
    /// Timecode relative to the Cluster's, in ticks.
    pub relative_timecode: i16,
    /// SimpleBlock: flag 0x80. BlockGroup: true when it has no `ReferenceBlock`.
    pub keyframe: bool,
    /// `BlockDuration` in ticks (BlockGroup only; for a laced block, the whole block's).
    pub duration: Option<u64>,
    /// The frame's bytes.
    pub data: Bytes,
    /// Stream offset of the frame's first byte.
    pub offset: u64,
}

/// Why the input cannot be read. `path` names the element, e.g. `Segment/Cluster/SimpleBlock`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MkvError {
    /// The bytes break EBML or Matroska rules this reader relies on.
    #[error("invalid MKV at byte {offset} in {path}: {reason}")]
    Invalid {
        /// Stream offset of the offending element (or byte).
        offset: u64,
        /// Element path.
        path: String,
        /// What is wrong.
        reason: Cow<'static, str>,
    },
    /// An element or count is over a [`ReaderLimits`] bound.
    #[error("{path} at byte {offset} has size {size}, over the limit of {limit}")]
    TooLarge {
        /// Stream offset of the element.
        offset: u64,
        /// Element path.
        path: String,
        /// Its size (bytes, or tracks for `max_tracks`).
        size: u64,
        /// The limit it broke.
        limit: u64,
    },
    /// The input ended inside an element.
    #[error("input ended inside {path} at byte {offset}")]
    Truncated {
        /// Stream offset where the incomplete element (or its unread rest) starts.
        offset: u64,
        /// Element path.
        path: String,
    },
}

fn invalid(offset: u64, path: String, reason: impl Into<Cow<'static, str>>) -> MkvError {
    MkvError::Invalid {
        offset,
        path,
        reason: reason.into(),
    }
}

fn name_of(element_id: u32) -> Cow<'static, str> {
    match ebml::element_name(element_id) {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(format!("0x{element_id:X}")),
    }
}

fn join_path(parent: &str, element_id: u32) -> String {
    if parent.is_empty() {
        name_of(element_id).into_owned()
    } else {
        format!("{parent}/{}", name_of(element_id))
    }
}

/// Elements that can only sit at level 0 or 1: they end an unknown-size Cluster (RFC 8794 §6.2).
fn ends_unknown_size_cluster(element_id: u32) -> bool {
    matches!(
        element_id,
        id::CLUSTER
            | id::TAGS
            | id::CUES
            | id::INFO
            | id::TRACKS
            | id::SEEK_HEAD
            | id::CHAPTERS
            | id::ATTACHMENTS
            | id::EBML
            | id::SEGMENT
    )
}

#[derive(Debug)]
struct SegmentState {
    /// Stream offset past the Segment's data, when its size is known.
    end: Option<u64>,
    timecode_scale_ns: Option<u64>,
    tracks: Option<Vec<Track>>,
    tracks_emitted: bool,
}

#[derive(Debug)]
struct ClusterState {
    start: u64,
    end: Option<u64>,
    timecode: Option<u64>,
}

#[derive(Debug)]
struct Skip {
    element_id: u32,
    remaining: u64,
}

enum Step {
    Progress,
    NeedMore,
}

/// The incremental reader. See the [module docs](self).
#[derive(Debug)]
pub struct MkvReader {
    limits: ReaderLimits,
    input: ChunkQueue,
    position: u64,
    pending: VecDeque<Event>,
    skip: Option<Skip>,
    seen_ebml_header: bool,
    /// Offset of an EBML header whose Segment has not begun yet.
    unclaimed_ebml_header: Option<u64>,
    segment: Option<SegmentState>,
    cluster: Option<ClusterState>,
    input_ended: bool,
    failed: Option<MkvError>,
}

impl Default for MkvReader {
    fn default() -> Self {
        Self::new(ReaderLimits::default())
    }
}

impl MkvReader {
    /// A reader at stream offset 0.
    pub fn new(limits: ReaderLimits) -> Self {
        Self {
            limits,
            input: ChunkQueue::default(),
            position: 0,
            pending: VecDeque::new(),
            skip: None,
            seen_ebml_header: false,
            unclaimed_ebml_header: None,
            segment: None,
            cluster: None,
            input_ended: false,
            failed: None,
        }
    }

    /// Queues more input. Ignored after an error or after [`finish`](Self::finish).
    pub fn push(&mut self, chunk: Bytes) {
        if self.failed.is_none() && !self.input_ended {
            self.input.push(chunk);
        }
    }

    /// The next event, or `Ok(None)` when more input is needed.
    pub fn next_event(&mut self) -> Result<Option<Event>, MkvError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            match self.step() {
                Ok(Step::Progress) => {}
                Ok(Step::NeedMore) => return Ok(None),
                Err(error) => {
                    self.input.clear();
                    self.pending.clear();
                    self.failed = Some(error.clone());
                    return Err(error);
                }
            }
        }
    }

    /// Declares the end of input. Call until `Ok(None)`: closes an open unknown-size Cluster
    /// (`ClusterEnd`) and returns [`MkvError::Truncated`] if the input stopped inside an element
    /// (including a known-size Segment or Cluster).
    pub fn finish(&mut self) -> Result<Option<Event>, MkvError> {
        self.input_ended = true;
        self.next_event()
    }

    /// Stream offset of the next unconsumed byte.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Bytes pushed but not yet consumed.
    pub fn buffered_bytes(&self) -> usize {
        self.input.len()
    }

    /// The path of the innermost open container, e.g. `Segment/Cluster`.
    fn context_path(&self) -> &'static str {
        match (&self.segment, &self.cluster) {
            (_, Some(_)) => "Segment/Cluster",
            (Some(_), None) => "Segment",
            (None, None) => "",
        }
    }

    fn path_of(&self, element_id: u32) -> String {
        join_path(self.context_path(), element_id)
    }

    /// End of the innermost container with a known end.
    fn parent_end(&self) -> Option<u64> {
        let segment_end = self.segment.as_ref().and_then(|s| s.end);
        match &self.cluster {
            Some(cluster) => cluster.end.or(segment_end),
            None => segment_end,
        }
    }

    fn truncated(&self, path: String) -> MkvError {
        MkvError::Truncated {
            offset: self.position,
            path,
        }
    }

    fn need_more(&self, path: impl FnOnce() -> String) -> Result<Step, MkvError> {
        if self.input_ended {
            Err(self.truncated(path()))
        } else {
            Ok(Step::NeedMore)
        }
    }

    /// One unit of work: consumes bytes, closes a container, or reports that input is needed.
    fn step(&mut self) -> Result<Step, MkvError> {
        if let Some(skip) = &mut self.skip {
            let skipped = self.input.skip(skip.remaining) as u64;
            self.position += skipped;
            skip.remaining -= skipped;
            if skip.remaining > 0 {
                let element_id = skip.element_id;
                return self.need_more(|| self.path_of(element_id));
            }
            self.skip = None;
            return Ok(Step::Progress);
        }

        // Known sizes end containers exactly at their last byte.
        if let Some(cluster) = &self.cluster {
            let segment_end = self.segment.as_ref().and_then(|s| s.end);
            if cluster.end.or(segment_end) == Some(self.position) {
                self.close_cluster()?;
                return Ok(Step::Progress);
            }
        }
        if let Some(segment) = &self.segment {
            if segment.end == Some(self.position) {
                self.close_segment();
                return Ok(Step::Progress);
            }
        }

        let mut peeked = [0u8; ebml::MAX_HEADER_LENGTH];
        let available = self.input.peek_into(&mut peeked);
        let peeked = &peeked[..available];
        if peeked.is_empty() {
            return if self.input_ended {
                self.end_of_input()
            } else {
                Ok(Step::NeedMore)
            };
        }

        let element_id = match ebml::read_id(peeked) {
            Decoded::Done { value, .. } => value,
            Decoded::Incomplete { .. } => return self.need_more(|| self.context_path().to_owned()),
            Decoded::Invalid(reason) => {
                return Err(invalid(
                    self.position,
                    self.context_path().to_owned(),
                    reason,
                ))
            }
        };

        // An unknown-size Cluster ends where a level-0/1 element begins (RFC 8794 §6.2);
        // an unknown-size Segment ends where the next EBML header or Segment begins.
        if let Some(cluster) = &self.cluster {
            if ends_unknown_size_cluster(element_id) {
                if cluster.end.is_none() {
                    self.close_cluster()?;
                    return Ok(Step::Progress);
                }
                return Err(invalid(
                    self.position,
                    self.path_of(element_id),
                    "top-level element inside a known-size Cluster",
                ));
            }
        } else if let Some(segment) = &self.segment {
            if matches!(element_id, id::EBML | id::SEGMENT) {
                if segment.end.is_none() {
                    self.close_segment();
                    return Ok(Step::Progress);
                }
                return Err(invalid(
                    self.position,
                    self.path_of(element_id),
                    "EBML header or Segment inside a known-size Segment",
                ));
            }
        }

        let header = match ebml::read_header(peeked) {
            Decoded::Done { value, .. } => value,
            Decoded::Incomplete { .. } => return self.need_more(|| self.path_of(element_id)),
            Decoded::Invalid(reason) => {
                return Err(invalid(self.position, self.path_of(element_id), reason))
            }
        };

        if let Some(end) = self.parent_end() {
            let data_start = self.position + header.header_len as u64;
            let overruns = match header.size {
                ElementSize::Known(size) => {
                    !matches!(data_start.checked_add(size), Some(e) if e <= end)
                }
                ElementSize::Unknown => data_start > end,
            };
            if overruns {
                return Err(invalid(
                    self.position,
                    self.path_of(element_id),
                    "element overruns its parent",
                ));
            }
        }

        if self.cluster.is_some() {
            self.cluster_child(header)
        } else if self.segment.is_some() {
            self.segment_child(header)
        } else {
            self.top_level_element(header)
        }
    }

    /// Input ended at an element boundary: close what an unknown size leaves open.
    fn end_of_input(&mut self) -> Result<Step, MkvError> {
        if let Some(cluster) = &self.cluster {
            if cluster.end.is_some() {
                return Err(self.truncated("Segment/Cluster".to_owned()));
            }
            self.close_cluster()?;
            return Ok(Step::Progress);
        }
        if let Some(segment) = &self.segment {
            if segment.end.is_some() {
                return Err(self.truncated("Segment".to_owned()));
            }
            self.close_segment();
            return Ok(Step::Progress);
        }
        Ok(Step::NeedMore)
    }

    fn close_cluster(&mut self) -> Result<(), MkvError> {
        if let Some(cluster) = self.cluster.take() {
            if cluster.timecode.is_none() {
                return Err(invalid(
                    cluster.start,
                    "Segment/Cluster".to_owned(),
                    "Cluster without Timecode",
                ));
            }
            self.pending.push_back(Event::ClusterEnd {
                offset: self.position,
            });
        }
        Ok(())
    }

    fn close_segment(&mut self) {
        if let Some(mut segment) = self.segment.take() {
            self.emit_tracks(&mut segment);
        }
    }

    fn emit_tracks(&mut self, segment: &mut SegmentState) {
        if segment.tracks_emitted {
            return;
        }
        if let Some(tracks) = segment.tracks.take() {
            segment.tracks_emitted = true;
            self.pending.push_back(Event::Tracks(SegmentInfo {
                timecode_scale_ns: segment
                    .timecode_scale_ns
                    .unwrap_or(DEFAULT_TIMECODE_SCALE_NS),
                tracks,
            }));
        }
    }

    /// Consumes a whole element of at most `limit` data bytes and returns its data, or `None`
    /// when it is not all here yet.
    fn read_whole(
        &mut self,
        header: &ElementHeader,
        limit: usize,
    ) -> Result<Option<Bytes>, MkvError> {
        let ElementSize::Known(size) = header.size else {
            return Err(invalid(
                self.position,
                self.path_of(header.id),
                "unknown size is not allowed for this element",
            ));
        };
        if size > limit as u64 {
            return Err(MkvError::TooLarge {
                offset: self.position,
                path: self.path_of(header.id),
                size,
                limit: limit as u64,
            });
        }
        // size <= limit, a usize.
        let size = size as usize;
        let total = header.header_len.saturating_add(size);
        if self.input.len() < total {
            self.need_more(|| self.path_of(header.id))?;
            return Ok(None);
        }
        self.input.skip(header.header_len as u64);
        let data = self.input.take(size);
        self.position += total as u64;
        Ok(Some(data))
    }

    fn start_skip(&mut self, header: &ElementHeader) -> Result<Step, MkvError> {
        let ElementSize::Known(size) = header.size else {
            return Err(invalid(
                self.position,
                self.path_of(header.id),
                "cannot skip an element of unknown size",
            ));
        };
        self.input.skip(header.header_len as u64);
        self.position += header.header_len as u64;
        self.skip = Some(Skip {
            element_id: header.id,
            remaining: size,
        });
        Ok(Step::Progress)
    }

    fn top_level_element(&mut self, header: ElementHeader) -> Result<Step, MkvError> {
        let offset = self.position;
        match header.id {
            id::EBML => {
                let Some(data) = self.read_whole(&header, self.limits.max_header_bytes)? else {
                    return Ok(Step::NeedMore);
                };
                parse_ebml_header(&data, offset + header.header_len as u64)?;
                self.seen_ebml_header = true;
                self.unclaimed_ebml_header = Some(offset);
                Ok(Step::Progress)
            }
            id::SEGMENT => {
                if !self.seen_ebml_header {
                    return Err(invalid(
                        offset,
                        "Segment".to_owned(),
                        "Segment before any EBML header",
                    ));
                }
                self.input.skip(header.header_len as u64);
                self.position += header.header_len as u64;
                let start = self.unclaimed_ebml_header.take().unwrap_or(offset);
                let end = match header.size {
                    ElementSize::Known(size) => Some(self.position.saturating_add(size)),
                    ElementSize::Unknown => None,
                };
                self.segment = Some(SegmentState {
                    end,
                    timecode_scale_ns: None,
                    tracks: None,
                    tracks_emitted: false,
                });
                self.pending
                    .push_back(Event::SegmentStart { offset: start });
                Ok(Step::Progress)
            }
            id::VOID | id::CRC32 => self.start_skip(&header),
            _ => Err(invalid(
                offset,
                name_of(header.id).into_owned(),
                "expected an EBML header or a Segment",
            )),
        }
    }

    fn segment_child(&mut self, header: ElementHeader) -> Result<Step, MkvError> {
        let offset = self.position;
        let data_offset = offset + header.header_len as u64;
        let path = || join_path("Segment", header.id);
        match header.id {
            id::INFO => {
                let Some(data) = self.read_whole(&header, self.limits.max_header_bytes)? else {
                    return Ok(Step::NeedMore);
                };
                let scale = parse_info(&data, data_offset, &path())?;
                let Some(mut segment) = self.segment.take() else {
                    return Ok(Step::Progress);
                };
                let result = if segment.timecode_scale_ns.is_some() {
                    Err(invalid(offset, path(), "second Info in one Segment"))
                } else {
                    segment.timecode_scale_ns = Some(scale);
                    if segment.tracks.is_some() {
                        self.emit_tracks(&mut segment);
                    }
                    Ok(Step::Progress)
                };
                self.segment = Some(segment);
                result
            }
            id::TRACKS => {
                let Some(data) = self.read_whole(&header, self.limits.max_header_bytes)? else {
                    return Ok(Step::NeedMore);
                };
                let tracks = parse_tracks(&data, data_offset, &path(), self.limits.max_tracks)?;
                let Some(mut segment) = self.segment.take() else {
                    return Ok(Step::Progress);
                };
                let result = if segment.tracks.is_some() || segment.tracks_emitted {
                    Err(invalid(offset, path(), "second Tracks in one Segment"))
                } else {
                    segment.tracks = Some(tracks);
                    if segment.timecode_scale_ns.is_some() {
                        self.emit_tracks(&mut segment);
                    }
                    Ok(Step::Progress)
                };
                self.segment = Some(segment);
                result
            }
            id::TAGS => {
                let Some(data) = self.read_whole(&header, self.limits.max_header_bytes)? else {
                    return Ok(Step::NeedMore);
                };
                let tags = parse_tags(&data, data_offset, &path())?;
                self.pending.push_back(Event::Tags(tags));
                Ok(Step::Progress)
            }
            id::CLUSTER => {
                let Some(mut segment) = self.segment.take() else {
                    return Ok(Step::Progress);
                };
                self.emit_tracks(&mut segment);
                let tracks_known = segment.tracks_emitted;
                self.segment = Some(segment);
                if !tracks_known {
                    return Err(invalid(offset, path(), "Cluster before Tracks"));
                }
                self.input.skip(header.header_len as u64);
                self.position = data_offset;
                self.cluster = Some(ClusterState {
                    start: offset,
                    end: match header.size {
                        ElementSize::Known(size) => Some(data_offset.saturating_add(size)),
                        ElementSize::Unknown => None,
                    },
                    timecode: None,
                });
                Ok(Step::Progress)
            }
            // SeekHead, Cues, Chapters, Attachments, Void, CRC-32 and unknown elements.
            _ => self.start_skip(&header),
        }
    }

    fn cluster_child(&mut self, header: ElementHeader) -> Result<Step, MkvError> {
        let offset = self.position;
        let data_offset = offset + header.header_len as u64;
        let block_limit = self
            .limits
            .max_frame_bytes
            .saturating_add(BLOCK_OVERHEAD_ALLOWANCE);
        match header.id {
            id::TIMECODE => {
                let Some(data) = self.read_whole(&header, 8)? else {
                    return Ok(Step::NeedMore);
                };
                let Some(timecode) = ebml::read_uint(&data) else {
                    return Err(invalid(
                        offset,
                        self.path_of(header.id),
                        "bad unsigned integer",
                    ));
                };
                if self.cluster.as_ref().is_some_and(|c| c.timecode.is_some()) {
                    return Err(invalid(
                        offset,
                        self.path_of(header.id),
                        "second Timecode in one Cluster",
                    ));
                }
                if let Some(cluster) = self.cluster.as_mut() {
                    cluster.timecode = Some(timecode);
                    self.pending.push_back(Event::ClusterStart {
                        timecode,
                        offset: cluster.start,
                    });
                }
                Ok(Step::Progress)
            }
            id::SIMPLE_BLOCK | id::BLOCK_GROUP => {
                if self.cluster.as_ref().is_some_and(|c| c.timecode.is_none()) {
                    return Err(invalid(
                        offset,
                        self.path_of(header.id),
                        "block before the Cluster Timecode",
                    ));
                }
                let Some(data) = self.read_whole(&header, block_limit)? else {
                    return Ok(Step::NeedMore);
                };
                let path = self.path_of(header.id);
                let max_frame = self.limits.max_frame_bytes;
                if header.id == id::SIMPLE_BLOCK {
                    parse_block(
                        &data,
                        data_offset,
                        BlockKind::Simple,
                        &path,
                        max_frame,
                        &mut self.pending,
                    )?;
                } else {
                    parse_block_group(&data, data_offset, &path, max_frame, &mut self.pending)?;
                }
                Ok(Step::Progress)
            }
            // Position, PrevSize, Void, CRC-32, SilentTracks, EncryptedBlock, unknown elements.
            _ => self.start_skip(&header),
        }
    }
}

/// A child element inside a buffered master element.
struct Child {
    id: u32,
    data: Bytes,
    /// Stream offset of the child's ID.
    offset: u64,
    /// Stream offset of the child's data.
    data_offset: u64,
}

/// Splits a buffered master element's data into its children (all sizes must be known).
fn children(data: &Bytes, data_offset: u64, path: &str) -> Result<Vec<Child>, MkvError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        let offset = data_offset + at as u64;
        let header = match ebml::read_header(&data[at..]) {
            Decoded::Done { value, .. } => value,
            Decoded::Incomplete { .. } => {
                return Err(invalid(
                    offset,
                    path.to_owned(),
                    "child element header overruns its parent",
                ))
            }
            Decoded::Invalid(reason) => return Err(invalid(offset, path.to_owned(), reason)),
        };
        let ElementSize::Known(size) = header.size else {
            return Err(invalid(
                offset,
                join_path(path, header.id),
                "unknown size inside a sized element",
            ));
        };
        let start = at + header.header_len;
        let remaining = (data.len() - start) as u64;
        if size > remaining {
            return Err(invalid(
                offset,
                join_path(path, header.id),
                "element overruns its parent",
            ));
        }
        // size <= remaining, so it fits in usize.
        let end = start + size as usize;
        out.push(Child {
            id: header.id,
            data: data.slice(start..end),
            offset,
            data_offset: data_offset + start as u64,
        });
        at = end;
    }
    Ok(out)
}

impl Child {
    fn uint(&self, parent: &str) -> Result<u64, MkvError> {
        ebml::read_uint(&self.data).ok_or_else(|| {
            invalid(
                self.offset,
                join_path(parent, self.id),
                "unsigned integer longer than 8 bytes",
            )
        })
    }

    fn uint32(&self, parent: &str) -> Result<u32, MkvError> {
        u32::try_from(self.uint(parent)?).map_err(|_| {
            invalid(
                self.offset,
                join_path(parent, self.id),
                "value does not fit 32 bits",
            )
        })
    }

    fn float(&self, parent: &str) -> Result<f64, MkvError> {
        ebml::read_float(&self.data).ok_or_else(|| {
            invalid(
                self.offset,
                join_path(parent, self.id),
                "float must be 0, 4 or 8 bytes",
            )
        })
    }

    fn string(&self) -> String {
        ebml::read_string(&self.data)
    }
}

/// EBML header (RFC 8794 §11.2): DocType must be `matroska` or `webm` (RFC 9559 §4), and the
/// ID/size widths must be ones this reader handles.
fn parse_ebml_header(data: &Bytes, data_offset: u64) -> Result<(), MkvError> {
    const PATH: &str = "EBML";
    for child in children(data, data_offset, PATH)? {
        match child.id {
            id::DOC_TYPE => {
                let doc_type = child.string();
                if doc_type != "matroska" && doc_type != "webm" {
                    return Err(invalid(
                        child.offset,
                        join_path(PATH, child.id),
                        format!("unsupported DocType {doc_type:?}"),
                    ));
                }
            }
            id::EBML_READ_VERSION if child.uint(PATH)? > 1 => {
                return Err(invalid(
                    child.offset,
                    join_path(PATH, child.id),
                    "EBMLReadVersion above 1",
                ));
            }
            id::EBML_MAX_ID_LENGTH if child.uint(PATH)? > ebml::MAX_ID_LENGTH as u64 => {
                return Err(invalid(
                    child.offset,
                    join_path(PATH, child.id),
                    "EBMLMaxIDLength above 4",
                ));
            }
            id::EBML_MAX_SIZE_LENGTH if child.uint(PATH)? > ebml::MAX_SIZE_LENGTH as u64 => {
                return Err(invalid(
                    child.offset,
                    join_path(PATH, child.id),
                    "EBMLMaxSizeLength above 8",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `Info`: only `TimestampScale` matters here.
fn parse_info(data: &Bytes, data_offset: u64, path: &str) -> Result<u64, MkvError> {
    let mut scale = DEFAULT_TIMECODE_SCALE_NS;
    for child in children(data, data_offset, path)? {
        if child.id == id::TIMECODE_SCALE {
            scale = child.uint(path)?;
            if scale == 0 {
                return Err(invalid(
                    child.offset,
                    join_path(path, child.id),
                    "TimecodeScale of 0",
                ));
            }
        }
    }
    Ok(scale)
}

fn parse_tracks(
    data: &Bytes,
    data_offset: u64,
    path: &str,
    max_tracks: usize,
) -> Result<Vec<Track>, MkvError> {
    let mut tracks: Vec<Track> = Vec::new();
    for child in children(data, data_offset, path)? {
        if child.id != id::TRACK_ENTRY {
            continue;
        }
        if tracks.len() == max_tracks {
            return Err(MkvError::TooLarge {
                offset: child.offset,
                path: join_path(path, child.id),
                size: max_tracks as u64 + 1,
                limit: max_tracks as u64,
            });
        }
        let entry_path = join_path(path, child.id);
        let track = parse_track_entry(&child, &entry_path)?;
        if tracks.iter().any(|t| t.number == track.number) {
            return Err(invalid(child.offset, entry_path, "duplicate TrackNumber"));
        }
        tracks.push(track);
    }
    Ok(tracks)
}

fn parse_track_entry(entry: &Child, path: &str) -> Result<Track, MkvError> {
    let mut number = None;
    let mut track_type = None;
    let mut codec_id = None;
    let mut track = Track::new(0, 0, "");
    for child in children(&entry.data, entry.data_offset, path)? {
        match child.id {
            id::TRACK_NUMBER => number = Some(child.uint(path)?),
            id::TRACK_UID => track.uid = Some(child.uint(path)?),
            id::TRACK_TYPE => {
                let value = child.uint(path)?;
                track_type = Some(u8::try_from(value).map_err(|_| {
                    invalid(
                        child.offset,
                        join_path(path, child.id),
                        "TrackType above 255",
                    )
                })?);
            }
            id::CODEC_ID => codec_id = Some(child.string()),
            id::CODEC_PRIVATE => track.codec_private = Some(child.data.clone()),
            id::NAME => track.name = Some(child.string()),
            id::DEFAULT_DURATION => track.default_duration_ns = Some(child.uint(path)?),
            id::VIDEO => {
                let video_path = join_path(path, child.id);
                for field in children(&child.data, child.data_offset, &video_path)? {
                    match field.id {
                        id::PIXEL_WIDTH => track.pixel_width = Some(field.uint32(&video_path)?),
                        id::PIXEL_HEIGHT => track.pixel_height = Some(field.uint32(&video_path)?),
                        _ => {}
                    }
                }
            }
            id::AUDIO => {
                let audio_path = join_path(path, child.id);
                for field in children(&child.data, child.data_offset, &audio_path)? {
                    match field.id {
                        id::SAMPLING_FREQUENCY => {
                            // RFC 9559: range "> 0x0p+0"; NaN and infinities are rejected too.
                            let hz = field.float(&audio_path)?;
                            if !(hz.is_finite() && hz > 0.0) {
                                return Err(invalid(
                                    field.offset,
                                    join_path(&audio_path, field.id),
                                    "SamplingFrequency must be finite and above 0",
                                ));
                            }
                            track.sampling_frequency = Some(hz);
                        }
                        id::CHANNELS => track.channels = Some(field.uint32(&audio_path)?),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let missing = |what: &'static str| invalid(entry.offset, path.to_owned(), what);
    match number {
        Some(0) => return Err(missing("TrackNumber 0")),
        Some(n) => track.number = TrackNumber(n),
        None => return Err(missing("TrackEntry without TrackNumber")),
    }
    track.track_type = track_type.ok_or_else(|| missing("TrackEntry without TrackType"))?;
    track.codec_id = codec_id.ok_or_else(|| missing("TrackEntry without CodecID"))?;
    Ok(track)
}

fn parse_tags(data: &Bytes, data_offset: u64, path: &str) -> Result<Vec<SimpleTag>, MkvError> {
    let mut out = Vec::new();
    for tag in children(data, data_offset, path)? {
        if tag.id != id::TAG {
            continue;
        }
        let tag_path = join_path(path, tag.id);
        for simple in children(&tag.data, tag.data_offset, &tag_path)? {
            if simple.id != id::SIMPLE_TAG {
                continue; // Targets and unknown children.
            }
            let simple_path = join_path(&tag_path, simple.id);
            let mut name = None;
            let mut value = None;
            for field in children(&simple.data, simple.data_offset, &simple_path)? {
                match field.id {
                    id::TAG_NAME => name = Some(field.string()),
                    id::TAG_STRING => value = Some(TagValue::String(field.string())),
                    id::TAG_BINARY => value = Some(TagValue::Binary(field.data.clone())),
                    _ => {} // nested SimpleTags, TagLanguage, TagDefault...
                }
            }
            let name = name.ok_or_else(|| {
                invalid(
                    simple.offset,
                    simple_path.clone(),
                    "SimpleTag without TagName",
                )
            })?;
            out.push(SimpleTag {
                name,
                value: value.unwrap_or_else(|| TagValue::String(String::new())),
            });
        }
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum BlockKind {
    /// SimpleBlock: key frame from the flags.
    Simple,
    /// Block in a BlockGroup: key frame and duration from its siblings.
    InGroup {
        keyframe: bool,
        duration: Option<u64>,
    },
}

fn parse_block_group(
    data: &Bytes,
    data_offset: u64,
    path: &str,
    max_frame: usize,
    out: &mut VecDeque<Event>,
) -> Result<(), MkvError> {
    let mut block = None;
    let mut duration = None;
    let mut referenced = false;
    for child in children(data, data_offset, path)? {
        match child.id {
            id::BLOCK => {
                if block.is_some() {
                    return Err(invalid(
                        child.offset,
                        join_path(path, child.id),
                        "second Block in one BlockGroup",
                    ));
                }
                block = Some(child);
            }
            id::BLOCK_DURATION => duration = Some(child.uint(path)?),
            id::REFERENCE_BLOCK => referenced = true,
            _ => {}
        }
    }
    let block =
        block.ok_or_else(|| invalid(data_offset, path.to_owned(), "BlockGroup without Block"))?;
    parse_block(
        &block.data,
        block.data_offset,
        BlockKind::InGroup {
            keyframe: !referenced,
            duration,
        },
        &join_path(path, block.id),
        max_frame,
        out,
    )
}

/// A Block / SimpleBlock payload (RFC 9559, "Block Structure", "SimpleBlock Structure",
/// "Block Lacing"): track VINT, int16 relative timecode, flags, then one frame or a lace.
fn parse_block(
    data: &Bytes,
    data_offset: u64,
    kind: BlockKind,
    path: &str,
    max_frame: usize,
    out: &mut VecDeque<Event>,
) -> Result<(), MkvError> {
    let bad =
        |at: usize, reason: &'static str| invalid(data_offset + at as u64, path.to_owned(), reason);
    let (track, track_len) = match ebml::read_vint(data) {
        Decoded::Done {
            value: (track, _),
            len,
        } => (track, len),
        Decoded::Incomplete { .. } => return Err(bad(0, "block header truncated")),
        Decoded::Invalid(reason) => return Err(bad(0, reason)),
    };
    let Some(&[tc_high, tc_low, flags]) = data.get(track_len..track_len + 3) else {
        return Err(bad(0, "block header truncated"));
    };
    let relative_timecode = i16::from_be_bytes([tc_high, tc_low]);
    let (keyframe, duration) = match kind {
        BlockKind::Simple => (flags & SIMPLE_BLOCK_KEYFRAME != 0, None),
        BlockKind::InGroup { keyframe, duration } => (keyframe, duration),
    };
    let mut at = track_len + 3;

    // Frame sizes of a lace (all but the last, which takes the rest).
    let mut sizes: Vec<usize> = Vec::new();
    let lacing = flags & LACING_MASK;
    if lacing != 0 {
        let Some(&count_minus_one) = data.get(at) else {
            return Err(bad(at, "lace header truncated"));
        };
        at += 1;
        let count = usize::from(count_minus_one) + 1;
        match lacing {
            LACING_XIPH => {
                for _ in 1..count {
                    let mut size = 0usize;
                    loop {
                        let Some(&byte) = data.get(at) else {
                            return Err(bad(at, "Xiph lace sizes truncated"));
                        };
                        at += 1;
                        size += usize::from(byte);
                        if byte != 0xFF {
                            break;
                        }
                    }
                    sizes.push(size);
                }
            }
            LACING_EBML => {
                let mut previous: i64 = 0;
                for index in 1..count {
                    let rest = data.get(at..).unwrap_or_default();
                    let decoded = if index == 1 {
                        match ebml::read_vint(rest) {
                            Decoded::Done { value: (v, _), len } => Decoded::Done {
                                value: v as i64,
                                len,
                            },
                            Decoded::Incomplete { needed } => Decoded::Incomplete { needed },
                            Decoded::Invalid(r) => Decoded::Invalid(r),
                        }
                    } else {
                        match ebml::read_signed_vint(rest) {
                            Decoded::Done { value, len } => Decoded::Done {
                                value: previous.saturating_add(value),
                                len,
                            },
                            other => other,
                        }
                    };
                    let (size, len) = match decoded {
                        Decoded::Done { value, len } => (value, len),
                        Decoded::Incomplete { .. } => {
                            return Err(bad(at, "EBML lace sizes truncated"))
                        }
                        Decoded::Invalid(reason) => return Err(bad(at, reason)),
                    };
                    let size =
                        usize::try_from(size).map_err(|_| bad(at, "negative EBML lace size"))?;
                    at += len;
                    previous = size as i64;
                    sizes.push(size);
                }
            }
            _ => {
                // Fixed-size lacing: the rest split evenly.
                let rest = data.len().saturating_sub(at);
                if rest % count != 0 {
                    return Err(bad(at, "fixed-size lace does not divide evenly"));
                }
                sizes.resize(count - 1, rest / count);
            }
        }
    }

    let mut frame_start = at;
    let laced_total = sizes.iter().try_fold(0usize, |acc, &s| acc.checked_add(s));
    let rest_after_sizes = data.len().checked_sub(frame_start);
    let last = match (laced_total, rest_after_sizes) {
        (Some(total), Some(rest)) if total <= rest => rest - total,
        _ => return Err(bad(at, "lace sizes exceed the block")),
    };
    sizes.push(last);
    let track = TrackNumber(track);
    for size in sizes {
        if size > max_frame {
            return Err(MkvError::TooLarge {
                offset: data_offset + frame_start as u64,
                path: path.to_owned(),
                size: size as u64,
                limit: max_frame as u64,
            });
        }
        let end = frame_start + size;
        out.push_back(Event::Frame(Frame {
            track,
            relative_timecode,
            keyframe,
            duration,
            data: data.slice(frame_start..end),
            offset: data_offset + frame_start as u64,
        }));
        frame_start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
