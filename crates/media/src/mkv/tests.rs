use super::writer::{MasterSize, MkvWriter};
use super::*;
use proptest::prelude::*;

/// Feeds `input` cut at `cuts` (sorted offsets), draining events after each chunk, then
/// finishes. Returns the events and the error that stopped the reader, if any.
fn read_chunked(
    input: &[u8],
    cuts: &[usize],
    limits: ReaderLimits,
) -> (Vec<Event>, Option<MkvError>) {
    let mut reader = MkvReader::new(limits);
    let mut events = Vec::new();
    let mut start = 0;
    let ends = cuts
        .iter()
        .copied()
        .filter(|&c| c <= input.len())
        .chain(std::iter::once(input.len()));
    for end in ends {
        if end < start {
            continue;
        }
        reader.push(Bytes::copy_from_slice(&input[start..end]));
        start = end;
        loop {
            match reader.next_event() {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(error) => return (events, Some(error)),
            }
        }
    }
    loop {
        match reader.finish() {
            Ok(Some(event)) => events.push(event),
            Ok(None) => break,
            Err(error) => return (events, Some(error)),
        }
    }
    assert_eq!(reader.buffered_bytes(), 0);
    assert_eq!(reader.position(), input.len() as u64);
    (events, None)
}

fn read_ok(input: &[u8]) -> Vec<Event> {
    let (events, error) = read_chunked(input, &[], ReaderLimits::default());
    assert_eq!(error, None, "events so far: {events:#?}");
    events
}

fn read_err(input: &[u8]) -> MkvError {
    read_chunked(input, &[], ReaderLimits::default())
        .1
        .expect("expected an error")
}

fn video_track() -> Track {
    Track {
        uid: Some(0x1234_5678_9ABC_DEF0),
        name: Some("kvs_video_track".into()),
        codec_private: Some(Bytes::from_static(&[0x01, 0x4D, 0x00, 0x2A, 0xFF])),
        default_duration_ns: Some(33_333_333),
        pixel_width: Some(1280),
        pixel_height: Some(720),
        ..Track::new(1, TRACK_TYPE_VIDEO, "V_MPEG4/ISO/AVC")
    }
}

fn audio_track() -> Track {
    Track {
        uid: Some(2),
        name: Some("kvs_audio_track".into()),
        codec_private: Some(Bytes::from_static(&[0x11, 0x90])),
        sampling_frequency: Some(48_000.0),
        channels: Some(2),
        ..Track::new(2, TRACK_TYPE_AUDIO, "A_AAC")
    }
}

fn fragment_tags() -> Vec<SimpleTag> {
    vec![
        SimpleTag {
            name: "AWS_KINESISVIDEO_FRAGMENT_NUMBER".into(),
            value: TagValue::String("91343852333181432392682062602744447798432040171".into()),
        },
        SimpleTag {
            name: "blob".into(),
            value: TagValue::Binary(Bytes::from_static(b"\x00\x01\x02")),
        },
    ]
}

/// A KVS-like stream: header, Info, Tracks, Tags, then `clusters` clusters of a key frame,
/// two delta frames and an audio frame.
fn sample_stream(writer: &mut MkvWriter, size: MasterSize, clusters: u64) {
    writer
        .ebml_header("matroska")
        .start_segment(size)
        .info(1_000_000)
        .tracks(&[video_track(), audio_track()])
        .tags(&fragment_tags());
    for n in 0..clusters {
        writer
            .start_cluster(1_700_000_000_000 + n * 1000, size)
            .simple_block(1, 0, true, format!("key{n}").as_bytes())
            .simple_block(2, 1, false, b"aac")
            .simple_block(1, 33, false, b"delta1")
            .simple_block(1, 66, false, b"delta2");
        if size == MasterSize::Known {
            writer.end_master();
        }
    }
    if size == MasterSize::Known {
        writer.end_master();
    }
}

fn expected_sample_events(clusters: u64, known: bool) -> Vec<Event> {
    let _ = known;
    let mut events = vec![
        Event::SegmentStart { offset: 0 },
        Event::Tracks(SegmentInfo {
            timecode_scale_ns: 1_000_000,
            tracks: vec![video_track(), audio_track()],
        }),
        Event::Tags(fragment_tags()),
    ];
    for n in 0..clusters {
        events.push(Event::ClusterStart {
            timecode: 1_700_000_000_000 + n * 1000,
            offset: 0,
        });
        for (track, rel, key, data) in [
            (1, 0, true, format!("key{n}")),
            (2, 1, false, "aac".into()),
            (1, 33, false, "delta1".into()),
            (1, 66, false, "delta2".into()),
        ] {
            events.push(Event::Frame(Frame {
                track: TrackNumber(track),
                relative_timecode: rel,
                keyframe: key,
                duration: None,
                data: Bytes::from(data),
                offset: 0,
            }));
        }
        events.push(Event::ClusterEnd { offset: 0 });
    }
    events
}

/// Zeroes the offsets so events can be compared with hand-written expectations.
fn without_offsets(events: &[Event]) -> Vec<Event> {
    events
        .iter()
        .cloned()
        .map(|event| match event {
            Event::SegmentStart { .. } => Event::SegmentStart { offset: 0 },
            Event::ClusterStart { timecode, .. } => Event::ClusterStart {
                timecode,
                offset: 0,
            },
            Event::ClusterEnd { .. } => Event::ClusterEnd { offset: 0 },
            Event::Frame(frame) => Event::Frame(Frame { offset: 0, ..frame }),
            other => other,
        })
        .collect()
}

#[test]
fn round_trip_unknown_sizes_kvs_style() {
    let mut writer = MkvWriter::kvs();
    sample_stream(&mut writer, MasterSize::Unknown, 3);
    let bytes = writer.finish();
    let events = read_ok(&bytes);
    assert_eq!(without_offsets(&events), expected_sample_events(3, false));
}

#[test]
fn round_trip_known_sizes_compact() {
    let mut writer = MkvWriter::new();
    sample_stream(&mut writer, MasterSize::Known, 3);
    let bytes = writer.finish();
    let events = read_ok(&bytes);
    assert_eq!(without_offsets(&events), expected_sample_events(3, true));
}

#[test]
fn offsets_point_into_the_stream() {
    let mut writer = MkvWriter::kvs();
    sample_stream(&mut writer, MasterSize::Unknown, 2);
    let bytes = writer.finish();
    let events = read_ok(&bytes);
    let mut cluster_ends = Vec::new();
    for event in &events {
        match event {
            Event::Frame(frame) => {
                let at = frame.offset as usize;
                assert_eq!(&bytes[at..at + frame.data.len()], &frame.data[..]);
            }
            Event::ClusterStart { offset, .. } => {
                assert_eq!(
                    &bytes[*offset as usize..*offset as usize + 4],
                    &[0x1F, 0x43, 0xB6, 0x75]
                );
            }
            Event::ClusterEnd { offset } => cluster_ends.push(*offset),
            _ => {}
        }
    }
    assert_eq!(cluster_ends.last().copied(), Some(bytes.len() as u64));
}

#[test]
fn block_groups_carry_duration_and_keyframe() {
    let mut writer = MkvWriter::new();
    writer
        .ebml_header("webm")
        .start_segment(MasterSize::Known)
        .info(100_000)
        .tracks(&[video_track()])
        .start_cluster(5, MasterSize::Known)
        .block_group(1, 0, b"I", Some(40), None)
        .block_group(1, 40, b"P", None, Some(-40));
    let bytes = writer.finish();
    let events = read_ok(&bytes);
    let frames: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Frame(f) => Some((f.keyframe, f.duration, f.relative_timecode, f.data.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        frames,
        vec![
            (true, Some(40), 0, Bytes::from_static(b"I")),
            (false, None, 40, Bytes::from_static(b"P")),
        ]
    );
    assert!(matches!(&events[1], Event::Tracks(info) if info.timecode_scale_ns == 100_000));
}

fn laced_stream(flags: u8, lace_header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut writer = MkvWriter::new();
    writer
        .ebml_header("matroska")
        .start_segment(MasterSize::Unknown)
        .tracks(&[audio_track()])
        .start_cluster(0, MasterSize::Unknown)
        .simple_block_raw(2, 7, flags, lace_header, data);
    writer.finish()
}

fn frame_data(events: &[Event]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Frame(f) => {
                assert_eq!(f.relative_timecode, 7);
                assert_eq!(f.track, TrackNumber(2));
                Some(f.data.to_vec())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn xiph_lacing() {
    // 3 frames: 300 bytes (255 + 45), 2 bytes, rest 1 byte.
    let mut data = vec![b'a'; 300];
    data.extend_from_slice(b"bbc");
    let bytes = laced_stream(SIMPLE_BLOCK_KEYFRAME | LACING_XIPH, &[2, 255, 45, 2], &data);
    let events = read_ok(&bytes);
    assert_eq!(
        frame_data(&events),
        vec![vec![b'a'; 300], b"bb".to_vec(), b"c".to_vec()]
    );
    // Default TimecodeScale when there is no Info.
    assert!(matches!(&events[1], Event::Tracks(info) if info.timecode_scale_ns == 1_000_000));
}

#[test]
fn fixed_lacing() {
    let bytes = laced_stream(LACING_FIXED, &[3], b"aabbccdd");
    assert_eq!(
        frame_data(&read_ok(&bytes)),
        vec![
            b"aa".to_vec(),
            b"bb".to_vec(),
            b"cc".to_vec(),
            b"dd".to_vec()
        ]
    );
    let bad = laced_stream(LACING_FIXED, &[2], b"aabbccdd");
    assert!(matches!(read_err(&bad), MkvError::Invalid { .. }));
}

#[test]
fn ebml_lacing() {
    // 4 frames: 3, 5 (+2), 4 (-1), rest 2. Signed 1-byte VINTs are biased by 63.
    let header = [3, 0x83, 0x80 | (63 + 2), 0x80 | (63 - 1)];
    let bytes = laced_stream(LACING_EBML, &header, b"aaabbbbbccccdd");
    assert_eq!(
        frame_data(&read_ok(&bytes)),
        vec![
            b"aaa".to_vec(),
            b"bbbbb".to_vec(),
            b"cccc".to_vec(),
            b"dd".to_vec()
        ]
    );
    let too_big = [1, 0x80 | 50];
    assert!(matches!(
        read_err(&laced_stream(LACING_EBML, &too_big, b"abc")),
        MkvError::Invalid { .. }
    ));
}

#[test]
fn two_concatenated_segments() {
    let mut first = MkvWriter::kvs();
    sample_stream(&mut first, MasterSize::Unknown, 2);
    let mut second = MkvWriter::new();
    sample_stream(&mut second, MasterSize::Known, 1);
    let first = first.finish();
    let mut bytes = first.clone();
    bytes.extend_from_slice(&second.finish());
    let events = read_ok(&bytes);
    let mut expected = expected_sample_events(2, false);
    expected.extend(expected_sample_events(1, true));
    assert_eq!(without_offsets(&events), expected);
    let starts: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::SegmentStart { offset } => Some(*offset),
            _ => None,
        })
        .collect();
    assert_eq!(starts, vec![0, first.len() as u64]);
}

#[test]
fn unknown_size_cluster_ends_at_tags_and_skips_unknown_children() {
    let mut writer = MkvWriter::kvs();
    writer
        .ebml_header("matroska")
        .start_segment(MasterSize::Unknown)
        .info(1_000_000)
        .tracks(&[video_track()])
        .start_master(id::CLUSTER, MasterSize::UnknownWidth(8))
        .element(id::VOID, &[0; 3])
        .uint(id::TIMECODE, 10)
        .uint(id::POSITION, 0)
        .element(0x4ABC, b"unknown cluster child")
        .element(id::CRC32, &[1, 2, 3, 4])
        .simple_block(1, 0, true, b"k")
        .tags(&fragment_tags())
        .element(id::CUES, b"cues are skipped")
        .start_cluster(20, MasterSize::Unknown)
        .simple_block(1, 0, true, b"k2");
    let events = without_offsets(&read_ok(&writer.finish()));
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            Event::SegmentStart { .. } => "segment",
            Event::Tracks(_) => "tracks",
            Event::Tags(_) => "tags",
            Event::ClusterStart { .. } => "start",
            Event::Frame(_) => "frame",
            Event::ClusterEnd { .. } => "end",
        })
        .collect();
    assert_eq!(
        kinds,
        ["segment", "tracks", "start", "frame", "end", "tags", "start", "frame", "end"]
    );
}

#[test]
fn errors_name_the_element() {
    let mut writer = MkvWriter::new();
    writer
        .ebml_header("matroska")
        .start_segment(MasterSize::Unknown)
        .tracks(&[video_track()])
        .start_master(id::CLUSTER, MasterSize::Unknown)
        .simple_block(1, 0, true, b"k")
        .uint(id::TIMECODE, 1);
    match read_err(&writer.finish()) {
        MkvError::Invalid { path, reason, .. } => {
            assert_eq!(path, "Segment/Cluster/SimpleBlock");
            assert!(reason.contains("Timecode"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    let mut writer = MkvWriter::new();
    writer
        .ebml_header("matroska")
        .start_segment(MasterSize::Unknown)
        .tracks(&[video_track()])
        .start_master(id::CLUSTER, MasterSize::Unknown)
        .end_master()
        .start_cluster(1, MasterSize::Unknown);
    assert!(
        matches!(read_err(&writer.finish()), MkvError::Invalid { reason, .. } if reason == "Cluster without Timecode")
    );

    let mut writer = MkvWriter::new();
    writer.ebml_header("avi").start_segment(MasterSize::Unknown);
    assert!(
        matches!(read_err(&writer.finish()), MkvError::Invalid { path, .. } if path == "EBML/DocType")
    );

    let mut writer = MkvWriter::new();
    writer.start_segment(MasterSize::Unknown);
    assert!(matches!(
        read_err(&writer.finish()),
        MkvError::Invalid { .. }
    ));

    let mut writer = MkvWriter::new();
    writer
        .ebml_header("matroska")
        .start_segment(MasterSize::Unknown)
        .start_cluster(1, MasterSize::Unknown);
    assert!(
        matches!(read_err(&writer.finish()), MkvError::Invalid { reason, .. } if reason == "Cluster before Tracks")
    );
}

#[test]
fn truncation_and_limits() {
    let mut writer = MkvWriter::kvs();
    sample_stream(&mut writer, MasterSize::Unknown, 1);
    let bytes = writer.finish();
    let cut = &bytes[..bytes.len() - 2];
    match read_err(cut) {
        MkvError::Truncated { path, .. } => assert_eq!(path, "Segment/Cluster/SimpleBlock"),
        other => panic!("{other:?}"),
    }

    let mut writer = MkvWriter::new();
    sample_stream(&mut writer, MasterSize::Known, 1);
    let bytes = writer.finish();
    // Known-size Segment and Cluster must be complete.
    assert!(matches!(
        read_err(&bytes[..bytes.len() - 1]),
        MkvError::Truncated { .. }
    ));

    let limits = ReaderLimits {
        max_frame_bytes: 4,
        ..ReaderLimits::default()
    };
    let (_, error) = read_chunked(&bytes, &[], limits);
    assert!(
        matches!(
            error,
            Some(MkvError::TooLarge {
                size: 6,
                limit: 4,
                ..
            })
        ),
        "{error:?}"
    );

    let limits = ReaderLimits {
        max_header_bytes: 64,
        ..ReaderLimits::default()
    };
    let (_, error) = read_chunked(&bytes, &[], limits);
    assert!(
        matches!(error, Some(MkvError::TooLarge { ref path, .. }) if path == "Segment/Tracks"),
        "{error:?}"
    );

    let limits = ReaderLimits {
        max_tracks: 1,
        ..ReaderLimits::default()
    };
    let (_, error) = read_chunked(&bytes, &[], limits);
    assert!(
        matches!(
            error,
            Some(MkvError::TooLarge {
                size: 2,
                limit: 1,
                ..
            })
        ),
        "{error:?}"
    );
}

#[test]
fn failed_reader_stays_failed() {
    let mut reader = MkvReader::default();
    reader.push(Bytes::from_static(&[0x00, 1, 2, 3]));
    let first = reader.next_event().unwrap_err();
    reader.push(Bytes::from_static(b"more"));
    assert_eq!(reader.next_event().unwrap_err(), first);
    assert_eq!(reader.finish().unwrap_err(), first);
    assert_eq!(reader.buffered_bytes(), 0);
}

#[test]
fn frames_are_zero_copy_slices_of_one_chunk() {
    let mut writer = MkvWriter::kvs();
    sample_stream(&mut writer, MasterSize::Unknown, 1);
    let bytes = Bytes::from(writer.finish());
    let mut reader = MkvReader::default();
    reader.push(bytes.clone());
    let range = bytes.as_ptr_range();
    while let Some(event) = reader.next_event().unwrap() {
        if let Event::Frame(frame) = event {
            assert!(range.contains(&frame.data.as_ptr()));
        }
    }
}

#[test]
fn every_split_of_a_small_stream_gives_the_same_events() {
    let mut writer = MkvWriter::kvs();
    sample_stream(&mut writer, MasterSize::Unknown, 2);
    let bytes = writer.finish();
    let whole = read_chunked(&bytes, &[], ReaderLimits::default());
    for cut in 0..=bytes.len() {
        assert_eq!(
            read_chunked(&bytes, &[cut], ReaderLimits::default()),
            whole,
            "cut at {cut}"
        );
    }
    let every_byte: Vec<usize> = (0..bytes.len()).collect();
    assert_eq!(
        read_chunked(&bytes, &every_byte, ReaderLimits::default()),
        whole
    );
}

/// Strategy: a valid stream from the writer with random tracks/frames/sizes.
fn arbitrary_stream() -> impl Strategy<Value = Vec<u8>> {
    let frame = (
        1u64..=3,
        any::<i16>(),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..300),
        0u8..3,
    );
    let cluster = (any::<u32>(), proptest::collection::vec(frame, 0..6));
    let segment = (
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(cluster, 0..4),
    );
    proptest::collection::vec(segment, 1..3).prop_map(|segments| {
        let mut writer = MkvWriter::new();
        for (known, long, clusters) in segments {
            writer.long_sizes(long);
            let size = if known {
                MasterSize::Known
            } else {
                MasterSize::Unknown
            };
            writer
                .ebml_header("matroska")
                .start_segment(size)
                .info(1_000_000)
                .tracks(&[
                    video_track(),
                    audio_track(),
                    Track::new(3, 17, "S_TEXT/UTF8"),
                ])
                .tags(&fragment_tags());
            for (timecode, frames) in clusters {
                writer.start_cluster(u64::from(timecode), size);
                for (track, rel, key, data, kind) in frames {
                    match kind {
                        0 => writer.simple_block(track, rel, key, &data),
                        1 => writer.block_group(track, rel, &data, Some(3), (!key).then_some(-1)),
                        _ => writer.simple_block_raw(
                            track,
                            rel,
                            LACING_FIXED,
                            &[1],
                            &[&data[..], &data[..]].concat(),
                        ),
                    };
                }
                if known {
                    writer.end_master();
                }
            }
            if known {
                writer.end_master();
            }
        }
        writer.finish()
    })
}

fn cuts_for(len: usize, raw: &[usize]) -> Vec<usize> {
    let mut cuts: Vec<usize> = raw.iter().map(|c| c % (len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn chunking_does_not_change_events(stream in arbitrary_stream(), raw_cuts in proptest::collection::vec(any::<usize>(), 0..20)) {
        let whole = read_chunked(&stream, &[], ReaderLimits::default());
        prop_assert_eq!(&whole.1, &None);
        let cuts = cuts_for(stream.len(), &raw_cuts);
        prop_assert_eq!(&read_chunked(&stream, &cuts, ReaderLimits::default()), &whole);
    }

    #[test]
    fn one_byte_chunks_give_the_same_events(stream in arbitrary_stream()) {
        let whole = read_chunked(&stream, &[], ReaderLimits::default());
        let every: Vec<usize> = (0..stream.len()).collect();
        prop_assert_eq!(&read_chunked(&stream, &every, ReaderLimits::default()), &whole);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000), raw_cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let whole = read_chunked(&bytes, &[], ReaderLimits::default());
        let cuts = cuts_for(bytes.len(), &raw_cuts);
        prop_assert_eq!(&read_chunked(&bytes, &cuts, ReaderLimits::default()), &whole);
    }

    #[test]
    fn mutated_streams_never_panic_and_chunking_still_agrees(
        stream in arbitrary_stream(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8),
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut bytes = stream;
        for (at, value, op) in edits {
            let at = at % (bytes.len() + 1);
            match op {
                0 if at < bytes.len() => bytes[at] = value,
                1 => bytes.insert(at, value),
                _ if at < bytes.len() => { bytes.remove(at); }
                _ => {}
            }
        }
        let limits = ReaderLimits { max_frame_bytes: 1024, max_header_bytes: 4096, max_tracks: 4 };
        let whole = read_chunked(&bytes, &[], limits);
        let cuts = cuts_for(bytes.len(), &raw_cuts);
        prop_assert_eq!(&read_chunked(&bytes, &cuts, limits), &whole);
    }
}

#[test]
fn nan_sampling_frequency_is_invalid() {
    // Found by cargo-fuzz: NaN would make events unequal to themselves.
    let mut writer = MkvWriter::new();
    writer
        .ebml_header("matroska")
        .start_segment(MasterSize::Unknown)
        .tracks(&[Track {
            sampling_frequency: Some(f64::NAN),
            ..audio_track()
        }]);
    match read_err(&writer.finish()) {
        MkvError::Invalid { path, .. } => {
            assert_eq!(path, "Segment/Tracks/TrackEntry/Audio/SamplingFrequency")
        }
        other => panic!("{other:?}"),
    }
}
