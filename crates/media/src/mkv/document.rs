//! GetMedia's output: one self-contained Matroska document per stored fragment
//! (docs/wire.md#getmedia), laid out as AWS's own GetMedia responses are: EBML header, a
//! Segment of unknown size, `Info`, `Tracks` (each track's own CodecPrivate), a `Tags` element
//! with the fragment's identity, the `Cluster` with every frame, then `Tags` elements (the
//! producer's fragment metadata, then the resume point).
//!
//! Pure: the frames are not copied. The result is a header buffer and the places where each
//! track's stored bytes go ([`Piece`]), so a server sends slices of what it read.

use std::ops::Range;

use super::writer::{MasterSize, MkvWriter};
use super::{SimpleTag, Track};
use crate::ebml::id;
use crate::timeline::StoredSample;

/// One track of a fragment: its `TrackEntry` and its samples in stored (decode) order, whose
/// bytes are contiguous in the track's stored data.
#[derive(Clone, Copy, Debug)]
pub struct DocumentTrack<'a> {
    /// The `TrackEntry` written into `Tracks`.
    pub entry: &'a Track,
    /// The samples, in decode order.
    pub samples: &'a [StoredSample],
    /// Length of the track's stored data (the sum of its sample sizes).
    pub data_len: u64,
}

/// What goes into one fragment's document.
#[derive(Clone, Copy, Debug)]
pub struct FragmentDocument<'a> {
    /// The Cluster's timecode in ms, as the producer sent it: the fragment's start, which the
    /// samples' `pts_offset_ns` are relative to.
    pub cluster_timecode_ms: i64,
    /// The tracks, in `Tracks` order.
    pub tracks: &'a [DocumentTrack<'a>],
    /// One `Tags` element before the Cluster.
    pub tags_before_cluster: &'a [SimpleTag],
    /// One `Tags` element each, after the Cluster, in order.
    pub tags_after_cluster: &'a [&'a [SimpleTag]],
}

/// A run of the finished document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Bytes of [`Document::head`].
    Written(Range<usize>),
    /// Bytes of the stored data of track `track` (an index into [`FragmentDocument::tracks`]).
    Stored {
        /// Index of the track.
        track: usize,
        /// Byte range within that track's data.
        range: Range<u64>,
    },
}

/// A fragment's document: `pieces` in order, drawing on `head` and the tracks' stored bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// Every byte the writer made (headers, tags, block headers).
    pub head: Vec<u8>,
    /// The document, in order.
    pub pieces: Vec<Piece>,
    /// Its total length.
    pub len: u64,
}

/// Why a fragment's document cannot be written (a stored row that does not add up).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The samples' sizes do not add up to the track's stored length.
    #[error("track {track}: samples hold {samples} bytes, the stored data {stored}")]
    SizeMismatch {
        /// The track's number.
        track: u64,
        /// Sum of the sample sizes.
        samples: u64,
        /// The track's stored length.
        stored: u64,
    },
    /// A timestamp that a Matroska timecode cannot carry.
    #[error("{0}")]
    Timing(String),
}

/// Timecode scales tried, coarsest first: the coarsest that carries every sample's time exactly
/// is used (1 ms for what producers send), so a reader sees the times that were ingested.
const SCALES_NS: [u64; 4] = [1_000_000, 100_000, 10_000, 1_000];

/// The timecode scale for a fragment and whether its times are exact at it. A block's timecode
/// is a signed 16-bit offset from the Cluster's, so a finer scale is only usable while every
/// offset fits; when no scale is both exact and wide enough, 1 ms with rounding.
fn timecode_scale(tracks: &[DocumentTrack<'_>]) -> u64 {
    let offsets = || {
        tracks
            .iter()
            .flat_map(|t| t.samples.iter().map(|s| s.pts_offset_ns))
    };
    for scale in SCALES_NS {
        let scale_i = scale as i64;
        let fits = offsets().all(|o| o % scale_i == 0 && i16::try_from(o / scale_i).is_ok());
        if fits {
            return scale;
        }
    }
    SCALES_NS[0]
}

/// A block's timecode relative to the Cluster's: `offset_ns` at `scale`, rounded to nearest.
fn relative_timecode(offset_ns: i64, scale: u64) -> Result<i16, DocumentError> {
    let scale = scale as i64;
    let ticks = (offset_ns + offset_ns.signum() * scale / 2) / scale;
    i16::try_from(ticks).map_err(|_| {
        DocumentError::Timing(format!(
            "a sample {offset_ns} ns from the fragment start is beyond a Matroska block timecode"
        ))
    })
}

/// The duration most samples have (the shortest of the most common), if any has one.
fn common_duration(samples: &[StoredSample]) -> Option<u64> {
    let mut durations: Vec<u64> = samples.iter().filter_map(|s| s.duration_ns).collect();
    durations.sort_unstable();
    let mut best: Option<(usize, u64)> = None;
    for run in durations.chunk_by(|a, b| a == b) {
        if best.is_none_or(|(n, _)| run.len() > n) {
            best = Some((run.len(), run[0]));
        }
    }
    best.map(|(_, d)| d)
}

/// Writes the document of one fragment.
pub fn fragment_document(doc: &FragmentDocument<'_>) -> Result<Document, DocumentError> {
    for t in doc.tracks {
        let samples: u64 = t.samples.iter().map(|s| u64::from(s.size)).sum();
        if samples != t.data_len {
            return Err(DocumentError::SizeMismatch {
                track: t.entry.number.0,
                samples,
                stored: t.data_len,
            });
        }
    }
    let start_ms = u64::try_from(doc.cluster_timecode_ms).map_err(|_| {
        DocumentError::Timing(format!(
            "a negative Cluster timecode ({} ms)",
            doc.cluster_timecode_ms
        ))
    })?;
    let scale = timecode_scale(doc.tracks);
    let cluster_timecode = start_ms
        .checked_mul(1_000_000 / scale)
        .ok_or_else(|| DocumentError::Timing(format!("a fragment starting at {start_ms} ms")))?;

    let mut w: MkvWriter<(usize, Range<u64>)> = MkvWriter::with_external();
    w.ebml_header("matroska").start_segment(MasterSize::Unknown);
    w.start_master(id::INFO, MasterSize::Known)
        .uint(id::TIMECODE_SCALE, scale)
        .string(id::MUXING_APP, "openkvs")
        .string(id::WRITING_APP, "openkvs")
        .end_master();
    // Ingest keeps a duration per sample, from its BlockDuration or its track's DefaultDuration
    // (the two are not told apart). The track's most common one becomes its DefaultDuration and
    // those samples SimpleBlocks, as producers write them; only the others need a BlockGroup.
    let defaults: Vec<Option<u64>> = doc
        .tracks
        .iter()
        .map(|t| common_duration(t.samples))
        .collect();
    let entries: Vec<Track> = doc
        .tracks
        .iter()
        .zip(&defaults)
        .map(|(t, &default)| Track {
            default_duration_ns: default.or(t.entry.default_duration_ns),
            ..t.entry.clone()
        })
        .collect();
    w.tracks(&entries).tags(doc.tags_before_cluster);

    w.start_master(id::CLUSTER, MasterSize::Known)
        .uint(id::TIMECODE, cluster_timecode);
    // Tracks interleaved by time, each in its stored (decode) order: the next block is the
    // track head with the earliest presentation time.
    let mut next = vec![0usize; doc.tracks.len()];
    let mut offsets = vec![0u64; doc.tracks.len()];
    let mut previous: Vec<Option<i16>> = vec![None; doc.tracks.len()];
    loop {
        let pick = (0..doc.tracks.len())
            .filter(|&i| next[i] < doc.tracks[i].samples.len())
            .min_by_key(|&i| (doc.tracks[i].samples[next[i]].pts_offset_ns, i));
        let Some(i) = pick else { break };
        let track = &doc.tracks[i];
        let sample = &track.samples[next[i]];
        let timecode = relative_timecode(sample.pts_offset_ns, scale)?;
        let len = u64::from(sample.size);
        let source = (i, offsets[i]..offsets[i] + len);
        let number = track.entry.number.0;
        match sample.duration_ns.filter(|&d| Some(d) != defaults[i]) {
            // Another duration needs a BlockGroup (RFC 9559 §10.1); its frame is a key frame
            // unless it names a reference (§10.2).
            Some(duration_ns) => {
                let reference = (!sample.keyframe).then(|| {
                    let delta = previous[i].map_or(-1, |p| i64::from(p) - i64::from(timecode));
                    if delta == 0 {
                        -1
                    } else {
                        delta
                    }
                });
                let duration = (duration_ns + scale / 2) / scale;
                w.block_group_external(number, timecode, len, source, Some(duration), reference);
            }
            None => {
                w.simple_block_external(number, timecode, sample.keyframe, len, source);
            }
        }
        previous[i] = Some(timecode);
        offsets[i] += len;
        next[i] += 1;
    }
    w.end_master();
    for tags in doc.tags_after_cluster {
        w.tags(tags);
    }
    let len = w.position();
    let (head, splices) = w.finish_with_splices();
    let mut pieces = Vec::with_capacity(splices.len() * 2 + 1);
    let mut written = 0;
    for splice in splices {
        if splice.at > written {
            pieces.push(Piece::Written(written..splice.at));
        }
        written = splice.at;
        let (track, range) = splice.source;
        pieces.push(Piece::Stored { track, range });
    }
    if head.len() > written {
        pieces.push(Piece::Written(written..head.len()));
    }
    Ok(Document { head, pieces, len })
}

/// A document that only reports an error (docs/wire.md#getmedia: a problem after the response
/// has started): EBML header, a Segment of unknown size and one `Tags` element.
pub fn error_document(tags: &[SimpleTag]) -> Vec<u8> {
    let mut w = MkvWriter::new();
    w.ebml_header("matroska")
        .start_segment(MasterSize::Unknown)
        .tags(tags);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mkv::{Event, MkvReader, ReaderLimits, TagValue};
    use bytes::Bytes;

    fn sample(pts_ms: i64, size: u32, keyframe: bool) -> StoredSample {
        StoredSample {
            pts_offset_ns: pts_ms * 1_000_000,
            duration_ns: None,
            size,
            keyframe,
        }
    }

    fn tag(name: &str, value: &str) -> SimpleTag {
        SimpleTag {
            name: name.into(),
            value: TagValue::String(value.into()),
        }
    }

    /// The document with the pieces filled in from `data` (one buffer per track).
    fn assemble(doc: &Document, data: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in &doc.pieces {
            match piece {
                Piece::Written(r) => out.extend_from_slice(&doc.head[r.clone()]),
                Piece::Stored { track, range } => {
                    out.extend_from_slice(&data[*track][range.start as usize..range.end as usize])
                }
            }
        }
        assert_eq!(out.len() as u64, doc.len);
        out
    }

    fn events(bytes: Vec<u8>) -> Vec<Event> {
        let mut reader = MkvReader::new(ReaderLimits::default());
        reader.push(Bytes::from(bytes));
        let mut out = Vec::new();
        while let Some(e) = reader.next_event().unwrap() {
            out.push(e);
        }
        if let Some(e) = reader.finish().unwrap() {
            out.push(e);
        }
        out
    }

    #[test]
    fn frames_come_back_byte_exact_with_their_times_and_tags() {
        let video = Track::new(1, 1, "V_MPEG4/ISO/AVC");
        let audio = Track::new(2, 2, "A_AAC");
        let v = [
            sample(0, 3, true),
            sample(66, 2, false),
            sample(33, 4, false),
        ];
        let a = [sample(0, 1, true), sample(21, 1, true), sample(42, 2, true)];
        let vdata: &[u8] = b"KEYbbCCCC";
        let adata: &[u8] = b"xyzz";
        let tracks = [
            DocumentTrack {
                entry: &video,
                samples: &v,
                data_len: 9,
            },
            DocumentTrack {
                entry: &audio,
                samples: &a,
                data_len: 4,
            },
        ];
        let before = [tag("AWS_KINESISVIDEO_FRAGMENT_NUMBER", "1")];
        let producer = [tag("camera", "front")];
        let after = [tag("AWS_KINESISVIDEO_CONTINUATION_TOKEN", "1")];
        let doc = fragment_document(&FragmentDocument {
            cluster_timecode_ms: 1_700_000_000_000,
            tracks: &tracks,
            tags_before_cluster: &before,
            tags_after_cluster: &[&producer, &after],
        })
        .unwrap();
        // Not a frame byte in the head: they are all spliced in.
        assert!(!doc.head.windows(3).any(|w| w == b"KEY"));
        let bytes = assemble(&doc, &[vdata, adata]);
        let events = events(bytes);
        let frames: Vec<(u64, i16, bool, Bytes)> = events
            .iter()
            .filter_map(|e| match e {
                Event::Frame(f) => {
                    Some((f.track.0, f.relative_timecode, f.keyframe, f.data.clone()))
                }
                _ => None,
            })
            .collect();
        // Interleaved by time, each track in stored order.
        assert_eq!(
            frames,
            [
                (1, 0, true, Bytes::from_static(b"KEY")),
                (2, 0, true, Bytes::from_static(b"x")),
                (2, 21, true, Bytes::from_static(b"y")),
                (2, 42, true, Bytes::from_static(b"zz")),
                (1, 66, false, Bytes::from_static(b"bb")),
                (1, 33, false, Bytes::from_static(b"CCCC")),
            ]
        );
        let names: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                Event::Tags(tags) => Some(tags.iter().map(|t| t.name.clone()).collect::<Vec<_>>()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(
            names,
            [
                "AWS_KINESISVIDEO_FRAGMENT_NUMBER",
                "camera",
                "AWS_KINESISVIDEO_CONTINUATION_TOKEN"
            ]
        );
        let cluster = events.iter().find_map(|e| match e {
            Event::ClusterStart { timecode, .. } => Some(*timecode),
            _ => None,
        });
        assert_eq!(cluster, Some(1_700_000_000_000));
    }

    #[test]
    fn sub_millisecond_times_pick_a_finer_scale_and_long_ones_round() {
        let track = Track::new(1, 2, "A_AAC");
        let fine = [
            StoredSample {
                pts_offset_ns: 0,
                duration_ns: Some(21_333_000),
                size: 1,
                keyframe: true,
            },
            StoredSample {
                pts_offset_ns: 21_333_000,
                duration_ns: Some(21_333_000),
                size: 1,
                keyframe: true,
            },
        ];
        let tracks = [DocumentTrack {
            entry: &track,
            samples: &fine,
            data_len: 2,
        }];
        let doc = FragmentDocument {
            cluster_timecode_ms: 5,
            tracks: &tracks,
            tags_before_cluster: &[],
            tags_after_cluster: &[],
        };
        assert_eq!(timecode_scale(&tracks), 1_000);
        let out = fragment_document(&doc).unwrap();
        let events = events(assemble(&out, &[b"ab"]));
        let timecodes: Vec<(i16, Option<u64>)> = events
            .iter()
            .filter_map(|e| match e {
                Event::Frame(f) => Some((f.relative_timecode, f.duration)),
                _ => None,
            })
            .collect();
        // One duration for both: the track's DefaultDuration, and SimpleBlocks.
        assert_eq!(timecodes, [(0, None), (21_333, None)]);
        let default = events.iter().find_map(|e| match e {
            Event::Tracks(info) => Some(info.tracks[0].default_duration_ns),
            _ => None,
        });
        assert_eq!(default, Some(Some(21_333_000)));
        // 20 s of such samples does not fit 16 bits at 1 µs: 1 ms, rounded.
        let long = [StoredSample {
            pts_offset_ns: 19_999_999_999,
            ..fine[0]
        }];
        let tracks = [DocumentTrack {
            entry: &track,
            samples: &long,
            data_len: 1,
        }];
        assert_eq!(timecode_scale(&tracks), 1_000_000);
        assert_eq!(relative_timecode(19_999_999_999, 1_000_000), Ok(20_000));
        assert!(relative_timecode(40_000_000_000, 1_000_000).is_err());
    }

    #[test]
    fn only_samples_off_the_common_duration_get_a_block_group() {
        let track = Track::new(1, 1, "V_MPEG4/ISO/AVC");
        let with = |pts_ms: i64, duration_ms: u64, keyframe: bool| StoredSample {
            duration_ns: Some(duration_ms * 1_000_000),
            ..sample(pts_ms, 1, keyframe)
        };
        let samples = [with(0, 33, true), with(33, 33, false), with(66, 20, false)];
        let tracks = [DocumentTrack {
            entry: &track,
            samples: &samples,
            data_len: 3,
        }];
        let doc = fragment_document(&FragmentDocument {
            cluster_timecode_ms: 0,
            tracks: &tracks,
            tags_before_cluster: &[],
            tags_after_cluster: &[],
        })
        .unwrap();
        let events = events(assemble(&doc, &[b"abc"]));
        let frames: Vec<(bool, Option<u64>)> = events
            .iter()
            .filter_map(|e| match e {
                Event::Frame(f) => Some((f.keyframe, f.duration)),
                _ => None,
            })
            .collect();
        assert_eq!(frames, [(true, None), (false, None), (false, Some(20))]);
        assert_eq!(common_duration(&samples), Some(33_000_000));
        assert_eq!(common_duration(&[sample(0, 1, true)]), None);
    }

    #[test]
    fn a_row_that_does_not_add_up_is_an_error_not_a_panic() {
        let track = Track::new(1, 1, "V_MPEG4/ISO/AVC");
        let samples = [sample(0, 10, true)];
        let tracks = [DocumentTrack {
            entry: &track,
            samples: &samples,
            data_len: 9,
        }];
        let doc = FragmentDocument {
            cluster_timecode_ms: 0,
            tracks: &tracks,
            tags_before_cluster: &[],
            tags_after_cluster: &[],
        };
        assert!(matches!(
            fragment_document(&doc),
            Err(DocumentError::SizeMismatch { .. })
        ));
        let doc = FragmentDocument {
            cluster_timecode_ms: -1,
            tracks: &[],
            ..doc
        };
        assert!(matches!(
            fragment_document(&doc),
            Err(DocumentError::Timing(_))
        ));
    }

    #[test]
    fn an_error_document_is_a_tags_element_a_reader_accepts() {
        let bytes = error_document(&[
            tag("AWS_KINESISVIDEO_ERROR_CODE", "FRAGMENT_NOT_FOUND"),
            tag("AWS_KINESISVIDEO_ERROR_ID", "4000"),
        ]);
        let tags: Vec<Vec<SimpleTag>> = events(bytes)
            .into_iter()
            .filter_map(|e| match e {
                Event::Tags(t) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0][1], tag("AWS_KINESISVIDEO_ERROR_ID", "4000"));
    }

    proptest::proptest! {
        /// Any sample table either fails cleanly or assembles into a document whose frames are
        /// the stored bytes in each track's order.
        #[test]
        fn any_sample_table_is_written_or_refused_without_panic(
            table in proptest::collection::vec(
                (0usize..2, -40_000_000_000i64..40_000_000_000, proptest::option::of(0u64..10_000_000_000), 0u32..64, proptest::bool::ANY),
                0..40,
            ),
            cluster_timecode_ms in -5i64..2_000_000_000_000,
        ) {
            let entries = [Track::new(1, 1, "V_MPEG4/ISO/AVC"), Track::new(2, 2, "A_AAC")];
            let mut samples: [Vec<StoredSample>; 2] = [Vec::new(), Vec::new()];
            for (track, pts, duration, size, keyframe) in table {
                samples[track].push(StoredSample { pts_offset_ns: pts, duration_ns: duration, size, keyframe });
            }
            let data: Vec<Vec<u8>> = samples
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let len: u64 = s.iter().map(|s| u64::from(s.size)).sum();
                    (0..len).map(|b| (b as u8).wrapping_add(i as u8 * 100)).collect()
                })
                .collect();
            let tracks: Vec<DocumentTrack<'_>> = (0..2)
                .map(|i| DocumentTrack { entry: &entries[i], samples: &samples[i], data_len: data[i].len() as u64 })
                .collect();
            let doc = FragmentDocument { cluster_timecode_ms, tracks: &tracks, tags_before_cluster: &[], tags_after_cluster: &[] };
            if let Ok(out) = fragment_document(&doc) {
                let frames: Vec<(u64, Bytes)> = events(assemble(&out, &[&data[0], &data[1]]))
                    .into_iter()
                    .filter_map(|e| match e { Event::Frame(f) => Some((f.track.0, f.data)), _ => None })
                    .collect();
                for (i, track_data) in data.iter().enumerate() {
                    let got: Vec<u8> = frames.iter().filter(|f| f.0 == i as u64 + 1).flat_map(|f| f.1.to_vec()).collect();
                    proptest::prop_assert_eq!(&got, track_data);
                }
            }
        }
    }
}
