//! A small Matroska writer: GetMedia's documents (`super::document`) and test inputs, good and
//! deliberately bad.
//!
//! One growable buffer; master elements of known size reserve their size field and are
//! backpatched when closed. Bytes the caller holds elsewhere (stored frames) are not copied in:
//! [`MkvWriter::external`] records where they go and counts them in the sizes of the masters
//! around them, and [`MkvWriter::finish_with_splices`] says where to splice them in. [`MkvWriter::kvs`] writes the way the KVS producer SDK does
//! (docs/wire.md#putmedia-body): 8-byte size fields and 8-byte integers, with 1-byte unknown sizes
//! (`0xFF`) for Segment and Cluster.
//!
//! ```
//! use media::mkv::{writer::{MkvWriter, MasterSize}, Track};
//! let mut w = MkvWriter::kvs();
//! w.ebml_header("matroska")
//!     .start_segment(MasterSize::Unknown)
//!     .info(1_000_000)
//!     .tracks(&[Track::new(1, 1, "V_MPEG4/ISO/AVC")])
//!     .start_cluster(1_700_000_000_000, MasterSize::Unknown)
//!     .simple_block(1, 0, true, b"frame");
//! let bytes = w.finish();
//! assert!(bytes.len() > 40);
//! ```

use crate::ebml::{self, id};
use crate::mkv::{SimpleTag, TagValue, Track, SIMPLE_BLOCK_KEYFRAME};

/// How a master element's size is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MasterSize {
    /// Backpatched with the real size when the element is closed.
    Known,
    /// Unknown size as one byte, `0xFF` (what the KVS producer SDK writes).
    Unknown,
    /// Unknown size as an all-ones VINT of this many bytes (1..=8).
    UnknownWidth(usize),
}

#[derive(Debug)]
struct OpenMaster {
    /// Where the reserved size field starts; `None` for unknown sizes.
    size_at: Option<usize>,
    width: usize,
    /// External bytes recorded before this master opened.
    external_before: u64,
}

/// Where bytes held outside the writer go: before `at` in the written buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Splice<S> {
    /// Position in the finished buffer.
    pub at: usize,
    /// Length of the external bytes.
    pub len: u64,
    /// The caller's name for those bytes.
    pub source: S,
}

/// The writer. Methods chain; [`finish`](Self::finish) closes what is open.
#[derive(Debug)]
pub struct MkvWriter<S = ()> {
    buf: Vec<u8>,
    open: Vec<OpenMaster>,
    long_sizes: bool,
    splices: Vec<Splice<S>>,
    external_len: u64,
}

impl<S> Default for MkvWriter<S> {
    fn default() -> Self {
        Self {
            buf: Vec::new(),
            open: Vec::new(),
            long_sizes: false,
            splices: Vec::new(),
            external_len: 0,
        }
    }
}

impl MkvWriter {
    /// Compact output: shortest size fields and integers.
    pub fn new() -> Self {
        Self::default()
    }

    /// KVS producer SDK style: 8-byte size fields and 8-byte integers.
    pub fn kvs() -> Self {
        Self {
            long_sizes: true,
            ..Self::default()
        }
    }
}

impl<S> MkvWriter<S> {
    /// Compact output whose external bytes are named by `S` ([`MkvWriter::external`]).
    pub fn with_external() -> Self {
        Self::default()
    }

    /// Turns 8-byte size fields and integers on or off for what is written next.
    pub fn long_sizes(&mut self, on: bool) -> &mut Self {
        self.long_sizes = on;
        self
    }

    /// Bytes written so far (open masters not yet backpatched).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Closes every open master and returns the bytes.
    pub fn finish(self) -> Vec<u8> {
        self.finish_with_splices().0
    }

    /// Closes every open master and returns the bytes and where the external bytes go, in
    /// order: the document is `buf[..s0.at] ++ s0's bytes ++ buf[s0.at..s1.at] ++ ...`.
    pub fn finish_with_splices(mut self) -> (Vec<u8>, Vec<Splice<S>>) {
        while !self.open.is_empty() {
            self.end_master();
        }
        (self.buf, self.splices)
    }

    /// Records `len` bytes the caller holds elsewhere as written here: counted in the sizes of
    /// the open masters, not copied.
    pub fn external(&mut self, len: u64, source: S) -> &mut Self {
        self.splices.push(Splice {
            at: self.buf.len(),
            len,
            source,
        });
        self.external_len += len;
        self
    }

    /// Bytes written so far, external ones included.
    pub fn position(&self) -> u64 {
        self.buf.len() as u64 + self.external_len
    }

    /// Appends raw bytes (for deliberately broken input).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// Writes an element ID (with marker bits, as the specs spell it).
    pub fn id(&mut self, element_id: u32) -> &mut Self {
        let width = ebml::id_width(element_id);
        self.buf
            .extend_from_slice(&element_id.to_be_bytes()[4 - width..]);
        self
    }

    /// Writes a data size: 8 bytes in long mode, else the shortest width.
    pub fn size(&mut self, size: u64) -> &mut Self {
        let width = if self.long_sizes {
            8
        } else {
            ebml::vint_width(size)
        };
        self.size_of_width(size, width)
    }

    /// Writes a data size with an exact width (clamped up to what the value needs).
    pub fn size_of_width(&mut self, size: u64, width: usize) -> &mut Self {
        let width = width.clamp(ebml::vint_width(size), 8);
        match ebml::encode_vint(size, width) {
            Some((bytes, len)) => self.buf.extend_from_slice(&bytes[..len]),
            // Beyond 2^56 - 2: no real buffer gets here; write "unknown".
            None => self
                .buf
                .extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
        }
        self
    }

    /// Writes an element with the given data.
    pub fn element(&mut self, element_id: u32, data: &[u8]) -> &mut Self {
        self.id(element_id).size(data.len() as u64).raw(data)
    }

    /// Writes an unsigned integer element (8 bytes in long mode, else the shortest).
    pub fn uint(&mut self, element_id: u32, value: u64) -> &mut Self {
        let bytes = value.to_be_bytes();
        let width = if self.long_sizes {
            8
        } else {
            (8 - value.leading_zeros() as usize / 8).max(1)
        };
        self.element(element_id, &bytes[8 - width..])
    }

    /// Writes an 8-byte float element.
    pub fn float(&mut self, element_id: u32, value: f64) -> &mut Self {
        self.element(element_id, &value.to_be_bytes())
    }

    /// Writes a string element.
    pub fn string(&mut self, element_id: u32, value: &str) -> &mut Self {
        self.element(element_id, value.as_bytes())
    }

    /// Opens a master element.
    pub fn start_master(&mut self, element_id: u32, size: MasterSize) -> &mut Self {
        self.id(element_id);
        match size {
            MasterSize::Known => {
                let width = if self.long_sizes { 8 } else { 4 };
                self.open.push(OpenMaster {
                    size_at: Some(self.buf.len()),
                    width,
                    external_before: self.external_len,
                });
                self.buf.resize(self.buf.len() + width, 0);
            }
            MasterSize::Unknown => {
                self.open.push(OpenMaster {
                    size_at: None,
                    width: 1,
                    external_before: self.external_len,
                });
                self.buf.push(0xFF);
            }
            MasterSize::UnknownWidth(width) => {
                let width = width.clamp(1, 8);
                self.open.push(OpenMaster {
                    size_at: None,
                    width,
                    external_before: self.external_len,
                });
                self.buf.push(0xFF >> (width - 1));
                self.buf.resize(self.buf.len() + width - 1, 0xFF);
            }
        }
        self
    }

    /// Closes the innermost open master, backpatching a known size.
    pub fn end_master(&mut self) -> &mut Self {
        let Some(master) = self.open.pop() else {
            return self;
        };
        let Some(size_at) = master.size_at else {
            return self;
        };
        let data_start = size_at + master.width;
        let size =
            (self.buf.len() - data_start) as u64 + (self.external_len - master.external_before);
        let width = master.width.max(ebml::vint_width(size));
        if let Some((bytes, len)) = ebml::encode_vint(size, width) {
            // Widening (a >256 MiB element in compact mode) shifts the data, and the splice
            // points in it.
            self.buf
                .splice(size_at..data_start, bytes[..len].iter().copied());
            let shift = len - master.width;
            for splice in self.splices.iter_mut().rev() {
                if splice.at < data_start {
                    break;
                }
                splice.at += shift;
            }
        }
        self
    }

    /// The EBML header (RFC 8794 §11.2) with the given DocType, as the KVS SDK writes it.
    pub fn ebml_header(&mut self, doc_type: &str) -> &mut Self {
        self.start_master(id::EBML, MasterSize::Known)
            .uint(id::EBML_VERSION, 1)
            .uint(id::EBML_READ_VERSION, 1)
            .uint(id::EBML_MAX_ID_LENGTH, 4)
            .uint(id::EBML_MAX_SIZE_LENGTH, 8)
            .string(id::DOC_TYPE, doc_type)
            .uint(id::DOC_TYPE_VERSION, 2)
            .uint(id::DOC_TYPE_READ_VERSION, 2)
            .end_master()
    }

    /// Opens a Segment.
    pub fn start_segment(&mut self, size: MasterSize) -> &mut Self {
        self.start_master(id::SEGMENT, size)
    }

    /// Writes `Info` with a TimecodeScale.
    pub fn info(&mut self, timecode_scale_ns: u64) -> &mut Self {
        self.start_master(id::INFO, MasterSize::Known)
            .uint(id::TIMECODE_SCALE, timecode_scale_ns)
            .string(id::MUXING_APP, "openkvs-writer")
            .end_master()
    }

    /// Writes `Tracks` with one `TrackEntry` per track.
    pub fn tracks(&mut self, tracks: &[Track]) -> &mut Self {
        self.start_master(id::TRACKS, MasterSize::Known);
        for track in tracks {
            self.start_master(id::TRACK_ENTRY, MasterSize::Known)
                .uint(id::TRACK_NUMBER, track.number.0);
            if let Some(uid) = track.uid {
                self.uint(id::TRACK_UID, uid);
            }
            self.uint(id::TRACK_TYPE, u64::from(track.track_type))
                .string(id::CODEC_ID, &track.codec_id);
            if let Some(name) = &track.name {
                self.string(id::NAME, name);
            }
            if let Some(private) = &track.codec_private {
                self.element(id::CODEC_PRIVATE, private);
            }
            if let Some(duration) = track.default_duration_ns {
                self.uint(id::DEFAULT_DURATION, duration);
            }
            if track.pixel_width.is_some() || track.pixel_height.is_some() {
                self.start_master(id::VIDEO, MasterSize::Known);
                if let Some(width) = track.pixel_width {
                    self.uint(id::PIXEL_WIDTH, u64::from(width));
                }
                if let Some(height) = track.pixel_height {
                    self.uint(id::PIXEL_HEIGHT, u64::from(height));
                }
                self.end_master();
            }
            if track.sampling_frequency.is_some() || track.channels.is_some() {
                self.start_master(id::AUDIO, MasterSize::Known);
                if let Some(frequency) = track.sampling_frequency {
                    self.float(id::SAMPLING_FREQUENCY, frequency);
                }
                if let Some(channels) = track.channels {
                    self.uint(id::CHANNELS, u64::from(channels));
                }
                self.end_master();
            }
            self.end_master();
        }
        self.end_master()
    }

    /// Writes segment-level `Tags` holding one `Tag` with these SimpleTags.
    pub fn tags(&mut self, tags: &[SimpleTag]) -> &mut Self {
        self.start_master(id::TAGS, MasterSize::Known)
            .start_master(id::TAG, MasterSize::Known)
            .start_master(id::TARGETS, MasterSize::Known)
            .end_master();
        for tag in tags {
            self.start_master(id::SIMPLE_TAG, MasterSize::Known)
                .string(id::TAG_NAME, &tag.name);
            match &tag.value {
                TagValue::String(value) => self.string(id::TAG_STRING, value),
                TagValue::Binary(value) => self.element(id::TAG_BINARY, value),
            };
            self.end_master();
        }
        self.end_master().end_master()
    }

    /// Opens a Cluster and writes its Timecode.
    pub fn start_cluster(&mut self, timecode: u64, size: MasterSize) -> &mut Self {
        self.start_master(id::CLUSTER, size)
            .uint(id::TIMECODE, timecode)
    }

    /// Writes a SimpleBlock without lacing.
    pub fn simple_block(
        &mut self,
        track: u64,
        relative_timecode: i16,
        keyframe: bool,
        data: &[u8],
    ) -> &mut Self {
        let flags = if keyframe { SIMPLE_BLOCK_KEYFRAME } else { 0 };
        self.block_element(id::SIMPLE_BLOCK, track, relative_timecode, flags, &[], data)
    }

    /// Writes a SimpleBlock with explicit flags and lace bytes (`lace_header` goes between the
    /// flags and `data`; the caller sets the lacing bits in `flags`).
    pub fn simple_block_raw(
        &mut self,
        track: u64,
        relative_timecode: i16,
        flags: u8,
        lace_header: &[u8],
        data: &[u8],
    ) -> &mut Self {
        self.block_element(
            id::SIMPLE_BLOCK,
            track,
            relative_timecode,
            flags,
            lace_header,
            data,
        )
    }

    /// Writes a BlockGroup with a Block, an optional BlockDuration and an optional
    /// ReferenceBlock (a non-key frame).
    pub fn block_group(
        &mut self,
        track: u64,
        relative_timecode: i16,
        data: &[u8],
        duration: Option<u64>,
        reference: Option<i64>,
    ) -> &mut Self {
        self.start_master(id::BLOCK_GROUP, MasterSize::Known)
            .block_element(id::BLOCK, track, relative_timecode, 0, &[], data);
        self.block_group_tail(duration, reference)
    }

    /// Writes a SimpleBlock (no lacing) whose frame bytes are external (`len` of `source`).
    pub fn simple_block_external(
        &mut self,
        track: u64,
        relative_timecode: i16,
        keyframe: bool,
        len: u64,
        source: S,
    ) -> &mut Self {
        let flags = if keyframe { SIMPLE_BLOCK_KEYFRAME } else { 0 };
        self.block_head(id::SIMPLE_BLOCK, track, relative_timecode, flags, len)
            .external(len, source)
    }

    /// Writes a BlockGroup like [`MkvWriter::block_group`] whose frame bytes are external.
    pub fn block_group_external(
        &mut self,
        track: u64,
        relative_timecode: i16,
        len: u64,
        source: S,
        duration: Option<u64>,
        reference: Option<i64>,
    ) -> &mut Self {
        self.start_master(id::BLOCK_GROUP, MasterSize::Known)
            .block_head(id::BLOCK, track, relative_timecode, 0, len)
            .external(len, source);
        self.block_group_tail(duration, reference)
    }

    fn block_group_tail(&mut self, duration: Option<u64>, reference: Option<i64>) -> &mut Self {
        if let Some(duration) = duration {
            self.uint(id::BLOCK_DURATION, duration);
        }
        if let Some(reference) = reference {
            self.element(id::REFERENCE_BLOCK, &reference.to_be_bytes());
        }
        self.end_master()
    }

    /// A block element's ID, size, track, timecode and flags, for `data_len` bytes after them.
    fn block_head(
        &mut self,
        element_id: u32,
        track: u64,
        relative_timecode: i16,
        flags: u8,
        data_len: u64,
    ) -> &mut Self {
        let track_width = ebml::vint_width(track);
        self.id(element_id).size(track_width as u64 + 3 + data_len);
        if let Some((bytes, len)) = ebml::encode_vint(track, track_width) {
            self.buf.extend_from_slice(&bytes[..len]);
        }
        self.buf.extend_from_slice(&relative_timecode.to_be_bytes());
        self.buf.push(flags);
        self
    }

    fn block_element(
        &mut self,
        element_id: u32,
        track: u64,
        relative_timecode: i16,
        flags: u8,
        lace_header: &[u8],
        data: &[u8],
    ) -> &mut Self {
        let data_len = (lace_header.len() + data.len()) as u64;
        self.block_head(element_id, track, relative_timecode, flags, data_len);
        self.buf.extend_from_slice(lace_header);
        self.buf.extend_from_slice(data);
        self
    }
}
