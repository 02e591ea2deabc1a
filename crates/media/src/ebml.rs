//! EBML primitives (RFC 8794): variable-size integers, element IDs and data sizes, the fixed-width
//! data types, and the Element IDs this crate knows (RFC 8794 §11.2 for the EBML header,
//! RFC 9559 §5.1 for Matroska; each constant names its element path).
//!
//! Decoders never panic: they answer [`Decoded::Incomplete`] when more bytes are needed and
//! [`Decoded::Invalid`] when the bytes can never form a valid value.

/// The outcome of decoding a value from the front of a byte slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<T> {
    /// The value and the number of bytes it took.
    Done {
        /// The decoded value.
        value: T,
        /// How many bytes of input it used.
        len: usize,
    },
    /// The slice ends before the value does; `needed` is the total length it will take, when known.
    Incomplete {
        /// The number of bytes the whole value needs, if the first byte told it.
        needed: Option<usize>,
    },
    /// The bytes can never decode to a valid value.
    Invalid(&'static str),
}

/// Longest Element ID this crate accepts (`EBMLMaxIDLength` default, RFC 8794 §11.2.4).
pub const MAX_ID_LENGTH: usize = 4;
/// Longest element data size field (`EBMLMaxSizeLength` default, RFC 8794 §11.2.5).
pub const MAX_SIZE_LENGTH: usize = 8;
/// Longest element header: an ID plus a size.
pub const MAX_HEADER_LENGTH: usize = MAX_ID_LENGTH + MAX_SIZE_LENGTH;

/// The total length of a VINT from its first byte: the count of leading zero bits plus one
/// (RFC 8794 §4.1). `None` for `0x00`, which would need more than 8 bytes.
pub fn vint_length(first: u8) -> Option<usize> {
    if first == 0 {
        None
    } else {
        Some(first.leading_zeros() as usize + 1)
    }
}

/// Decodes a VINT's value (marker bit removed) and reports whether all its value bits are set
/// (RFC 8794 §4). Accepts 1..=8 byte widths, including non-minimal ("long fixed-width") ones.
pub fn read_vint(buf: &[u8]) -> Decoded<(u64, bool)> {
    let Some(&first) = buf.first() else {
        return Decoded::Incomplete { needed: None };
    };
    let Some(len) = vint_length(first) else {
        return Decoded::Invalid("VINT longer than 8 bytes");
    };
    if buf.len() < len {
        return Decoded::Incomplete { needed: Some(len) };
    }
    // Marker bit cleared from the first byte; the rest are plain value bits.
    let mut value = u64::from(first) & (0xFF >> len);
    for &byte in &buf[1..len] {
        value = (value << 8) | u64::from(byte);
    }
    let all_ones = value == (1u64 << (7 * len)) - 1;
    Decoded::Done {
        value: (value, all_ones),
        len,
    }
}

/// An element's data size (RFC 8794 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementSize {
    /// A known number of data bytes.
    Known(u64),
    /// All VINT_DATA bits set: the size is unknown (RFC 8794 §6.2), whatever the width.
    Unknown,
}

/// Decodes an element data size (RFC 8794 §6): 1..=8 bytes, all-ones = unknown.
pub fn read_size(buf: &[u8]) -> Decoded<ElementSize> {
    match read_vint(buf) {
        Decoded::Done {
            value: (_, true),
            len,
        } => Decoded::Done {
            value: ElementSize::Unknown,
            len,
        },
        Decoded::Done {
            value: (value, false),
            len,
        } => Decoded::Done {
            value: ElementSize::Known(value),
            len,
        },
        Decoded::Incomplete { needed } => Decoded::Incomplete { needed },
        Decoded::Invalid(reason) => Decoded::Invalid(reason),
    }
}

/// Decodes an Element ID (RFC 8794 §5) and returns it with its marker bits kept, the way the
/// specs write IDs (`0x1A45DFA3`). IDs longer than [`MAX_ID_LENGTH`], and IDs whose value bits
/// are all zeros or all ones (reserved, RFC 8794 §5), are invalid.
pub fn read_id(buf: &[u8]) -> Decoded<u32> {
    let Some(&first) = buf.first() else {
        return Decoded::Incomplete { needed: None };
    };
    let len = match vint_length(first) {
        Some(len) if len <= MAX_ID_LENGTH => len,
        _ => return Decoded::Invalid("Element ID longer than 4 bytes"),
    };
    if buf.len() < len {
        return Decoded::Incomplete { needed: Some(len) };
    }
    let mut id = 0u32;
    for &byte in &buf[..len] {
        id = (id << 8) | u32::from(byte);
    }
    let value_bits = u64::from(id) & ((1u64 << (7 * len)) - 1);
    if value_bits == 0 {
        return Decoded::Invalid("Element ID with all value bits zero");
    }
    if value_bits == (1u64 << (7 * len)) - 1 {
        return Decoded::Invalid("reserved Element ID (all value bits set)");
    }
    Decoded::Done { value: id, len }
}

/// An element header: ID, data size, and how many bytes the two took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElementHeader {
    /// The Element ID with marker bits (as written in the specs).
    pub id: u32,
    /// The data size.
    pub size: ElementSize,
    /// Length of the ID plus the size field.
    pub header_len: usize,
}

/// Decodes an element header (ID then data size) from the front of `buf`.
pub fn read_header(buf: &[u8]) -> Decoded<ElementHeader> {
    let (id, id_len) = match read_id(buf) {
        Decoded::Done { value, len } => (value, len),
        Decoded::Incomplete { .. } => return Decoded::Incomplete { needed: None },
        Decoded::Invalid(reason) => return Decoded::Invalid(reason),
    };
    match read_size(&buf[id_len..]) {
        Decoded::Done { value, len } => Decoded::Done {
            value: ElementHeader {
                id,
                size: value,
                header_len: id_len + len,
            },
            len: id_len + len,
        },
        Decoded::Incomplete { needed } => Decoded::Incomplete {
            needed: needed.map(|n| n + id_len),
        },
        Decoded::Invalid(reason) => Decoded::Invalid(reason),
    }
}

/// Reads an unsigned integer element's data (RFC 8794 §7.2): 0..=8 big-endian bytes; empty = 0.
pub fn read_uint(data: &[u8]) -> Option<u64> {
    if data.len() > 8 {
        return None;
    }
    Some(data.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// Reads a signed integer element's data (RFC 8794 §7.1): 0..=8 big-endian two's complement bytes.
pub fn read_int(data: &[u8]) -> Option<i64> {
    if data.is_empty() {
        return Some(0);
    }
    let unsigned = read_uint(data)?;
    let shift = 64 - 8 * data.len() as u32;
    // Sign-extend from the element's width.
    Some(((unsigned << shift) as i64) >> shift)
}

/// Reads a float element's data (RFC 8794 §7.3): 0 (= 0.0), 4 or 8 bytes.
pub fn read_float(data: &[u8]) -> Option<f64> {
    match data.len() {
        0 => Some(0.0),
        4 => Some(f64::from(f32::from_be_bytes([
            data[0], data[1], data[2], data[3],
        ]))),
        8 => {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(data);
            Some(f64::from_be_bytes(bytes))
        }
        _ => None,
    }
}

/// Reads a String / UTF-8 element's data (RFC 8794 §7.4, §7.5): trailing NUL padding is dropped;
/// invalid UTF-8 is replaced rather than rejected.
pub fn read_string(data: &[u8]) -> String {
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    String::from_utf8_lossy(&data[..end]).into_owned()
}

/// Reads a signed VINT as used by EBML lacing (RFC 9559, "EBML Lacing"): the unsigned value
/// minus `2^(7n-1) - 1`.
pub fn read_signed_vint(buf: &[u8]) -> Decoded<i64> {
    match read_vint(buf) {
        Decoded::Done {
            value: (value, _),
            len,
        } => {
            let bias = (1i64 << (7 * len - 1)) - 1;
            Decoded::Done {
                // value < 2^56 so the cast is lossless.
                value: value as i64 - bias,
                len,
            }
        }
        Decoded::Incomplete { needed } => Decoded::Incomplete { needed },
        Decoded::Invalid(reason) => Decoded::Invalid(reason),
    }
}

/// Encodes `value` as a VINT of exactly `width` bytes (1..=8). Returns `None` when it does not
/// fit (the all-ones value is reserved for "unknown" and never produced here).
pub fn encode_vint(value: u64, width: usize) -> Option<([u8; 8], usize)> {
    if !(1..=8).contains(&width) || value >= (1u64 << (7 * width)) - 1 {
        return None;
    }
    let marked = value | (1u64 << (7 * width));
    let all = marked.to_be_bytes();
    let mut out = [0u8; 8];
    out[..width].copy_from_slice(&all[8 - width..]);
    Some((out, width))
}

/// The shortest VINT width that can hold `value` as a known size.
pub fn vint_width(value: u64) -> usize {
    (1..=8)
        .find(|&w| value < (1u64 << (7 * w)) - 1)
        .unwrap_or(8)
}

/// Number of bytes a big-endian ID takes (IDs are written with their marker bits).
pub fn id_width(id: u32) -> usize {
    match id {
        0..=0xFF => 1,
        0x100..=0xFFFF => 2,
        0x1_0000..=0xFF_FFFF => 3,
        _ => 4,
    }
}

/// Element IDs (with marker bits). EBML header IDs: RFC 8794 §11.2; Matroska: RFC 9559 §5.1.
pub mod id {
    /// `\EBML` (RFC 8794 §11.2.1).
    pub const EBML: u32 = 0x1A45_DFA3;
    /// `\EBML\EBMLVersion`.
    pub const EBML_VERSION: u32 = 0x4286;
    /// `\EBML\EBMLReadVersion`.
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    /// `\EBML\EBMLMaxIDLength`.
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    /// `\EBML\EBMLMaxSizeLength`.
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    /// `\EBML\DocType`.
    pub const DOC_TYPE: u32 = 0x4282;
    /// `\EBML\DocTypeVersion`.
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    /// `\EBML\DocTypeReadVersion`.
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    /// Global `Void` (RFC 8794 §11.3.2).
    pub const VOID: u32 = 0xEC;
    /// Global `CRC-32` (RFC 8794 §11.3.1).
    pub const CRC32: u32 = 0xBF;

    /// `\Segment` (RFC 9559 §5.1).
    pub const SEGMENT: u32 = 0x1853_8067;
    /// `\Segment\SeekHead`.
    pub const SEEK_HEAD: u32 = 0x114D_9B74;
    /// `\Segment\Info`.
    pub const INFO: u32 = 0x1549_A966;
    /// `\Segment\Info\TimestampScale` (called TimecodeScale before RFC 9559).
    pub const TIMECODE_SCALE: u32 = 0x2A_D7B1;
    /// `\Segment\Info\MuxingApp`.
    pub const MUXING_APP: u32 = 0x4D80;
    /// `\Segment\Info\WritingApp`.
    pub const WRITING_APP: u32 = 0x5741;
    /// `\Segment\Cluster`.
    pub const CLUSTER: u32 = 0x1F43_B675;
    /// `\Segment\Cluster\Timestamp` (called Timecode before RFC 9559).
    pub const TIMECODE: u32 = 0xE7;
    /// `\Segment\Cluster\Position`.
    pub const POSITION: u32 = 0xA7;
    /// `\Segment\Cluster\PrevSize`.
    pub const PREV_SIZE: u32 = 0xAB;
    /// `\Segment\Cluster\SimpleBlock`.
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    /// `\Segment\Cluster\BlockGroup`.
    pub const BLOCK_GROUP: u32 = 0xA0;
    /// `\Segment\Cluster\BlockGroup\Block`.
    pub const BLOCK: u32 = 0xA1;
    /// `\Segment\Cluster\BlockGroup\BlockDuration`.
    pub const BLOCK_DURATION: u32 = 0x9B;
    /// `\Segment\Cluster\BlockGroup\ReferenceBlock`.
    pub const REFERENCE_BLOCK: u32 = 0xFB;
    /// `\Segment\Tracks`.
    pub const TRACKS: u32 = 0x1654_AE6B;
    /// `\Segment\Tracks\TrackEntry`.
    pub const TRACK_ENTRY: u32 = 0xAE;
    /// `\Segment\Tracks\TrackEntry\TrackNumber`.
    pub const TRACK_NUMBER: u32 = 0xD7;
    /// `\Segment\Tracks\TrackEntry\TrackUID`.
    pub const TRACK_UID: u32 = 0x73C5;
    /// `\Segment\Tracks\TrackEntry\TrackType`.
    pub const TRACK_TYPE: u32 = 0x83;
    /// `\Segment\Tracks\TrackEntry\CodecID`.
    pub const CODEC_ID: u32 = 0x86;
    /// `\Segment\Tracks\TrackEntry\CodecPrivate`.
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    /// `\Segment\Tracks\TrackEntry\Name`.
    pub const NAME: u32 = 0x536E;
    /// `\Segment\Tracks\TrackEntry\DefaultDuration`.
    pub const DEFAULT_DURATION: u32 = 0x23_E383;
    /// `\Segment\Tracks\TrackEntry\Video`.
    pub const VIDEO: u32 = 0xE0;
    /// `\Segment\Tracks\TrackEntry\Video\PixelWidth`.
    pub const PIXEL_WIDTH: u32 = 0xB0;
    /// `\Segment\Tracks\TrackEntry\Video\PixelHeight`.
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    /// `\Segment\Tracks\TrackEntry\Audio`.
    pub const AUDIO: u32 = 0xE1;
    /// `\Segment\Tracks\TrackEntry\Audio\SamplingFrequency`.
    pub const SAMPLING_FREQUENCY: u32 = 0xB5;
    /// `\Segment\Tracks\TrackEntry\Audio\Channels`.
    pub const CHANNELS: u32 = 0x9F;
    /// `\Segment\Cues`.
    pub const CUES: u32 = 0x1C53_BB6B;
    /// `\Segment\Chapters`.
    pub const CHAPTERS: u32 = 0x1043_A770;
    /// `\Segment\Attachments`.
    pub const ATTACHMENTS: u32 = 0x1941_A469;
    /// `\Segment\Tags`.
    pub const TAGS: u32 = 0x1254_C367;
    /// `\Segment\Tags\Tag`.
    pub const TAG: u32 = 0x7373;
    /// `\Segment\Tags\Tag\Targets`.
    pub const TARGETS: u32 = 0x63C0;
    /// `\Segment\Tags\Tag\SimpleTag`.
    pub const SIMPLE_TAG: u32 = 0x67C8;
    /// `\Segment\Tags\Tag\SimpleTag\TagName`.
    pub const TAG_NAME: u32 = 0x45A3;
    /// `\Segment\Tags\Tag\SimpleTag\TagString`.
    pub const TAG_STRING: u32 = 0x4487;
    /// `\Segment\Tags\Tag\SimpleTag\TagBinary`.
    pub const TAG_BINARY: u32 = 0x4485;
}

/// A short human name for an element ID, used in error paths ("Segment/Cluster/SimpleBlock").
pub fn element_name(element_id: u32) -> Option<&'static str> {
    use id::*;
    Some(match element_id {
        EBML => "EBML",
        DOC_TYPE => "DocType",
        VOID => "Void",
        CRC32 => "CRC-32",
        SEGMENT => "Segment",
        SEEK_HEAD => "SeekHead",
        INFO => "Info",
        TIMECODE_SCALE => "TimecodeScale",
        CLUSTER => "Cluster",
        TIMECODE => "Timecode",
        SIMPLE_BLOCK => "SimpleBlock",
        BLOCK_GROUP => "BlockGroup",
        BLOCK => "Block",
        BLOCK_DURATION => "BlockDuration",
        REFERENCE_BLOCK => "ReferenceBlock",
        TRACKS => "Tracks",
        TRACK_ENTRY => "TrackEntry",
        TRACK_NUMBER => "TrackNumber",
        TRACK_UID => "TrackUID",
        TRACK_TYPE => "TrackType",
        CODEC_ID => "CodecID",
        CODEC_PRIVATE => "CodecPrivate",
        NAME => "Name",
        DEFAULT_DURATION => "DefaultDuration",
        VIDEO => "Video",
        PIXEL_WIDTH => "PixelWidth",
        PIXEL_HEIGHT => "PixelHeight",
        AUDIO => "Audio",
        SAMPLING_FREQUENCY => "SamplingFrequency",
        CHANNELS => "Channels",
        CUES => "Cues",
        CHAPTERS => "Chapters",
        ATTACHMENTS => "Attachments",
        TAGS => "Tags",
        TAG => "Tag",
        TARGETS => "Targets",
        SIMPLE_TAG => "SimpleTag",
        TAG_NAME => "TagName",
        TAG_STRING => "TagString",
        TAG_BINARY => "TagBinary",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done<T>(d: Decoded<T>) -> (T, usize) {
        match d {
            Decoded::Done { value, len } => (value, len),
            _ => panic!("not done"),
        }
    }

    #[test]
    fn vint_lengths() {
        assert_eq!(vint_length(0x80), Some(1));
        assert_eq!(vint_length(0x40), Some(2));
        assert_eq!(vint_length(0x01), Some(8));
        assert_eq!(vint_length(0x00), None);
    }

    #[test]
    fn sizes_of_each_width() {
        assert_eq!(done(read_size(&[0x81])), (ElementSize::Known(1), 1));
        assert_eq!(done(read_size(&[0x40, 0x02])), (ElementSize::Known(2), 2));
        assert_eq!(done(read_size(&[0x20, 0, 3])), (ElementSize::Known(3), 3));
        // 8-byte size fields as the KVS producer SDK writes them.
        assert_eq!(
            done(read_size(&[0x01, 0, 0, 0, 0, 0, 0x01, 0x00])),
            (ElementSize::Known(256), 8)
        );
        assert_eq!(
            done(read_size(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE])),
            (ElementSize::Known((1 << 56) - 2), 8)
        );
        assert_eq!(done(read_size(&[0x80])), (ElementSize::Known(0), 1));
    }

    #[test]
    fn all_ones_is_unknown_at_every_width() {
        for width in 1..=8usize {
            let mut bytes = vec![0xFFu8; width];
            bytes[0] = 0xFF >> (width - 1);
            assert_eq!(
                done(read_size(&bytes)),
                (ElementSize::Unknown, width),
                "width {width}"
            );
            // One less than all-ones is a known size.
            let last = bytes.len() - 1;
            bytes[last] = 0xFE;
            assert!(matches!(done(read_size(&bytes)).0, ElementSize::Known(_)));
        }
    }

    #[test]
    fn incomplete_and_invalid() {
        assert_eq!(read_size(&[]), Decoded::Incomplete { needed: None });
        assert_eq!(
            read_size(&[0x01, 0]),
            Decoded::Incomplete { needed: Some(8) }
        );
        assert!(matches!(read_size(&[0x00, 1, 2]), Decoded::Invalid(_)));
        assert!(matches!(read_id(&[0x08, 0, 0, 0, 0]), Decoded::Invalid(_)));
        assert!(matches!(read_id(&[0x80]), Decoded::Invalid(_)));
        assert!(matches!(read_id(&[0xFF]), Decoded::Invalid(_)));
        assert_eq!(
            read_id(&[0x1A, 0x45]),
            Decoded::Incomplete { needed: Some(4) }
        );
    }

    #[test]
    fn ids_keep_marker_bits() {
        assert_eq!(done(read_id(&[0x1A, 0x45, 0xDF, 0xA3])), (id::EBML, 4));
        assert_eq!(done(read_id(&[0xA3, 0x00])), (id::SIMPLE_BLOCK, 1));
        assert_eq!(done(read_id(&[0x2A, 0xD7, 0xB1])), (id::TIMECODE_SCALE, 3));
        assert_eq!(done(read_id(&[0x73, 0xC5])), (id::TRACK_UID, 2));
    }

    #[test]
    fn headers() {
        let h = done(read_header(&[0x1F, 0x43, 0xB6, 0x75, 0xFF])).0;
        assert_eq!(h.id, id::CLUSTER);
        assert_eq!(h.size, ElementSize::Unknown);
        assert_eq!(h.header_len, 5);
        assert_eq!(
            read_header(&[0x1F, 0x43, 0xB6, 0x75, 0x01, 0]),
            Decoded::Incomplete { needed: Some(12) }
        );
    }

    #[test]
    fn data_types() {
        assert_eq!(read_uint(&[]), Some(0));
        assert_eq!(
            read_uint(&[0, 0, 0, 0, 0, 0x0F, 0x42, 0x40]),
            Some(1_000_000)
        );
        assert_eq!(read_uint(&[0; 9]), None);
        assert_eq!(read_int(&[0xFF, 0xFE]), Some(-2));
        assert_eq!(read_int(&[0x7F]), Some(127));
        assert_eq!(read_float(&48000f32.to_be_bytes()), Some(48000.0));
        assert_eq!(read_float(&44100f64.to_be_bytes()), Some(44100.0));
        assert_eq!(read_float(&[0; 3]), None);
        assert_eq!(read_string(b"A_AAC\0\0"), "A_AAC");
    }

    #[test]
    fn signed_vints() {
        // 1-byte: bias 63.
        assert_eq!(done(read_signed_vint(&[0x80 | 63])), (0, 1));
        assert_eq!(done(read_signed_vint(&[0x80])), (-63, 1));
        // 2-byte: bias 8191.
        assert_eq!(done(read_signed_vint(&[0x5F, 0xFF])), (0, 2));
    }

    #[test]
    fn encode_round_trip() {
        for width in 1..=8 {
            for value in [0u64, 1, 126, 127, 16_382, 1 << 20, (1 << 56) - 2] {
                if let Some((bytes, len)) = encode_vint(value, width) {
                    assert_eq!(len, width);
                    assert_eq!(
                        done(read_size(&bytes[..len])),
                        (ElementSize::Known(value), width)
                    );
                } else {
                    assert!(value >= (1u64 << (7 * width)) - 1);
                }
            }
        }
        assert_eq!(vint_width(126), 1);
        assert_eq!(vint_width(127), 2);
        assert_eq!(id_width(id::EBML), 4);
        assert_eq!(id_width(id::TIMECODE), 1);
    }
}
