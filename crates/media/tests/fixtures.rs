//! Parses every `tests/fixtures/*.mkv` of the workspace (made by ffmpeg) and checks that the
//! events do not depend on how the bytes are split. Fails when the committed fixtures are missing.

use bytes::Bytes;
use media::mkv::{Event, MkvError, MkvReader, ReaderLimits, TRACK_TYPE_VIDEO};
use std::path::PathBuf;

fn fixtures() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the committed fixtures at {}: {e}", dir.display()));
    let mut files: Vec<(PathBuf, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "mkv"))
        .filter_map(|p| std::fs::read(&p).ok().map(|bytes| (p, bytes)))
        .collect();
    files.sort();
    files
}

/// Feeds `input` cut at the sorted offsets `cuts`, then finishes.
fn read(input: &[u8], cuts: &[usize]) -> Result<Vec<Event>, MkvError> {
    let bytes = Bytes::copy_from_slice(input);
    let mut reader = MkvReader::new(ReaderLimits::default());
    let mut events = Vec::new();
    let mut start = 0;
    for end in cuts.iter().copied().chain(std::iter::once(input.len())) {
        reader.push(bytes.slice(start..end));
        start = end;
        while let Some(event) = reader.next_event()? {
            events.push(event);
        }
    }
    while let Some(event) = reader.finish()? {
        events.push(event);
    }
    Ok(events)
}

#[test]
fn every_fixture_parses_with_clusters_and_frames() {
    for (path, bytes) in fixtures() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let events = read(&bytes, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let count = |f: fn(&Event) -> bool| events.iter().filter(|e| f(e)).count();
        let segments = count(|e| matches!(e, Event::SegmentStart { .. }));
        let tracks = count(|e| matches!(e, Event::Tracks(_)));
        let clusters = count(|e| matches!(e, Event::ClusterStart { .. }));
        let ends = count(|e| matches!(e, Event::ClusterEnd { .. }));
        let frames = count(|e| matches!(e, Event::Frame(_)));
        eprintln!("{name}: {segments} segments, {clusters} clusters, {frames} frames");
        assert!(segments > 0 && clusters > 0 && frames > 0, "{name}");
        assert_eq!(segments, tracks, "{name}: one Tracks per segment");
        assert_eq!(clusters, ends, "{name}: every cluster ends");

        // The first video frame of every cluster is a key frame (ffmpeg cuts clusters at GOPs).
        let mut video_tracks = Vec::new();
        let mut first_video_seen = true;
        for event in &events {
            match event {
                Event::Tracks(info) => {
                    video_tracks = info
                        .tracks
                        .iter()
                        .filter(|t| t.track_type == TRACK_TYPE_VIDEO)
                        .map(|t| t.number)
                        .collect();
                }
                Event::ClusterStart { .. } => first_video_seen = false,
                Event::Frame(frame) if !first_video_seen && video_tracks.contains(&frame.track) => {
                    first_video_seen = true;
                    assert!(
                        frame.keyframe,
                        "{name}: cluster opens with a non-key video frame"
                    );
                }
                _ => {}
            }
        }
    }
}

#[test]
fn fixture_events_do_not_depend_on_chunking() {
    let files = fixtures();
    let Some(smallest) = files.iter().map(|(_, b)| b.len()).min() else {
        return;
    };
    for (path, bytes) in &files {
        let whole = read(bytes, &[]);
        // Every boundary of the smallest file; a spread of boundaries for the others.
        let step = if bytes.len() == smallest { 1 } else { 997 };
        for cut in (0..=bytes.len()).step_by(step) {
            assert_eq!(
                read(bytes, &[cut]),
                whole,
                "{}: cut at {cut}",
                path.display()
            );
        }
        // KVS SDK chunking (65,524-byte HTTP chunks) and tiny chunks.
        for chunk in [65_524usize, 4096, 7] {
            let cuts: Vec<usize> = (chunk..bytes.len()).step_by(chunk).collect();
            assert_eq!(
                read(bytes, &cuts),
                whole,
                "{}: {chunk}-byte chunks",
                path.display()
            );
        }
    }
}
