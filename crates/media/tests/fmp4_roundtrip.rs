//! The strongest fMP4 test: every track of every fixture goes MKV reader → per-cluster samples →
//! `timeline` → `fmp4`, is written as init + media segments to a temporary .mp4 (one file per
//! codec-private-data epoch, as HLS switches `EXT-X-MAP`), and ffmpeg must see exactly the
//! source's frames: `-c copy -f framemd5` hashes equal the MKV track's, presentation times equal
//! the source's (B-frames reordered), and decoding prints no error. Fails when ffmpeg is absent.

use bytes::Bytes;
use media::codec::{AacConfig, AvcConfig, HevcConfig};
use media::fmp4::{init_segment, media_segment_header, media_segment_len, InitTrack};
use media::mkv::{Event, MkvReader, ReaderLimits, Track, TRACK_TYPE_VIDEO};
use media::timeline::{audio_timing, video_timing, StoredSample, TrackTiming};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Producer-timestamp-like origin (2025-11-24 in epoch ns): exercises 64-bit times.
const ORIGIN_NS: u64 = 1_764_000_000_000_000_000;
/// Video timescale.
const VIDEO_TIMESCALE: u32 = 90_000;

/// One frame as the store keeps it: absolute PTS in ns, flags, bytes.
struct StoredFrame {
    pts_ns: u64,
    duration_ns: Option<u64>,
    keyframe: bool,
    data: Bytes,
}

/// One cluster's frames of one track.
struct Fragment {
    /// Codec-private-data epoch (index of the `Tracks` event).
    epoch: usize,
    /// Index of the cluster in the file.
    cluster: usize,
    start_ns: u64,
    frames: Vec<StoredFrame>,
}

/// Per track number: the `Track` of each epoch and the fragments.
struct TrackData {
    configs: Vec<Track>,
    fragments: Vec<Fragment>,
}

fn fixtures() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "mkv"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn read_tracks(path: &Path) -> Vec<(u64, TrackData)> {
    let bytes = std::fs::read(path).unwrap();
    let mut reader = MkvReader::new(ReaderLimits::default());
    reader.push(Bytes::from(bytes));
    let mut events = Vec::new();
    while let Some(e) = reader.next_event().unwrap() {
        events.push(e);
    }
    while let Some(e) = reader.finish().unwrap() {
        events.push(e);
    }
    let mut tracks: Vec<(u64, TrackData)> = Vec::new();
    let mut epoch = 0usize;
    let mut scale = 1_000_000u64;
    let mut cluster_ns = 0u64;
    let mut cluster_index = 0usize;
    for event in events {
        match event {
            Event::Tracks(info) => {
                epoch = tracks.first().map_or(0, |(_, t)| t.configs.len());
                scale = info.timecode_scale_ns;
                for track in info.tracks {
                    match tracks.iter_mut().find(|(n, _)| *n == track.number.0) {
                        Some((_, data)) => data.configs.push(track),
                        None => tracks.push((
                            track.number.0,
                            TrackData {
                                configs: vec![track],
                                fragments: Vec::new(),
                            },
                        )),
                    }
                }
            }
            Event::ClusterStart { timecode, .. } => {
                cluster_ns = timecode * scale;
                cluster_index += 1;
            }
            Event::Frame(frame) => {
                let (_, data) = tracks
                    .iter_mut()
                    .find(|(n, _)| *n == frame.track.0)
                    .expect("frame of a known track");
                let start_ns = ORIGIN_NS + cluster_ns;
                // One fragment per cluster and track.
                if data
                    .fragments
                    .last()
                    .is_none_or(|f| f.cluster != cluster_index)
                {
                    data.fragments.push(Fragment {
                        epoch,
                        cluster: cluster_index,
                        start_ns,
                        frames: Vec::new(),
                    });
                }
                let pts_ns = (start_ns as i128
                    + i128::from(frame.relative_timecode) * i128::from(scale))
                    as u64;
                data.fragments.last_mut().unwrap().frames.push(StoredFrame {
                    pts_ns,
                    duration_ns: frame.duration.map(|d| d * scale),
                    keyframe: frame.keyframe,
                    data: frame.data,
                });
            }
            _ => {}
        }
    }
    tracks
}

fn stored_samples(fragment: &Fragment) -> Vec<StoredSample> {
    fragment
        .frames
        .iter()
        .map(|f| StoredSample {
            pts_offset_ns: (f.pts_ns as i128 - fragment.start_ns as i128) as i64,
            duration_ns: f.duration_ns,
            size: f.data.len() as u32,
            keyframe: f.keyframe,
        })
        .collect()
}

/// Timescale, init segment of one epoch's track.
fn init_for(track: &Track) -> (u32, Vec<u8>) {
    let cpd = track.codec_private.as_deref().expect("CodecPrivate");
    match track.codec_id.as_str() {
        "V_MPEG4/ISO/AVC" => {
            let c = AvcConfig::parse(cpd).unwrap();
            (
                VIDEO_TIMESCALE,
                init_segment(
                    &InitTrack::Avc {
                        avcc: cpd,
                        width: c.width,
                        height: c.height,
                    },
                    VIDEO_TIMESCALE,
                )
                .unwrap(),
            )
        }
        "V_MPEGH/ISO/HEVC" => {
            let c = HevcConfig::parse(cpd).unwrap();
            (
                VIDEO_TIMESCALE,
                init_segment(
                    &InitTrack::Hevc {
                        hvcc: cpd,
                        width: c.width,
                        height: c.height,
                    },
                    VIDEO_TIMESCALE,
                )
                .unwrap(),
            )
        }
        "A_AAC" => {
            let c = AacConfig::parse(cpd).unwrap();
            let init = InitTrack::Aac {
                asc: cpd,
                sample_rate: c.sample_rate,
                channels: c.channels,
            };
            (c.sample_rate, init_segment(&init, c.sample_rate).unwrap())
        }
        other => panic!("unexpected codec {other}"),
    }
}

/// The timing of each fragment of a track.
fn timings(track: &TrackData) -> Vec<TrackTiming> {
    let video = track.configs[0].track_type == TRACK_TYPE_VIDEO;
    let frame_length = if video {
        0
    } else {
        AacConfig::parse(track.configs[0].codec_private.as_deref().unwrap())
            .unwrap()
            .frame_length
    };
    (0..track.fragments.len())
        .map(|i| {
            let fragment = &track.fragments[i];
            let samples = stored_samples(fragment);
            if video {
                // The next fragment's first frame in decode order is its key frame: its PTS.
                let next = track.fragments.get(i + 1).map(|f| f.frames[0].pts_ns);
                video_timing(fragment.start_ns, &samples, VIDEO_TIMESCALE, next).unwrap()
            } else {
                let (timescale, _) = init_for(&track.configs[fragment.epoch]);
                audio_timing(fragment.start_ns, &samples, timescale, frame_length).unwrap()
            }
        })
        .collect()
}

/// init + media segments of one epoch, as one file's bytes.
fn build_file(track: &TrackData, epoch: usize, all_timings: &[TrackTiming]) -> Vec<u8> {
    let (_, mut out) = init_for(&track.configs[epoch]);
    for (i, (fragment, timing)) in track.fragments.iter().zip(all_timings).enumerate() {
        if fragment.epoch != epoch {
            continue;
        }
        let header = media_segment_header(i as u32 + 1, timing).unwrap();
        let start = out.len();
        out.extend_from_slice(&header);
        for frame in &fragment.frames {
            out.extend_from_slice(&frame.data);
        }
        assert_eq!((out.len() - start) as u64, media_segment_len(timing));
    }
    out
}

fn run(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (size, md5) of each packet line of `-f framemd5` output.
fn framemd5(input: &Path, map: Option<&str>) -> Vec<(String, String)> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-i"]).arg(input);
    if let Some(map) = map {
        cmd.args(["-map", map]);
    }
    cmd.args(["-c", "copy", "-f", "framemd5", "-"]);
    let (stdout, _) = run(&mut cmd);
    stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let cols: Vec<&str> = l.split(',').map(str::trim).collect();
            (cols[4].to_string(), cols[5].to_string())
        })
        .collect()
}

/// (pts, dts) of each packet of stream 0, in stream time base.
fn packets(input: &Path) -> Vec<(i64, i64)> {
    let (stdout, _) = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "0",
            "-show_entries",
            "packet=pts,dts",
            "-of",
            "csv=p=0",
        ])
        .arg(input));
    stdout
        .lines()
        .map(|l| {
            let (pts, dts) = l.split_once(',').unwrap();
            (pts.trim().parse().unwrap(), dts.trim().parse().unwrap())
        })
        .collect()
}

fn have_ffmpeg() -> bool {
    let ok = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
        && Command::new("ffprobe")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "ffmpeg and ffprobe are needed for the fMP4 round trip (scripts/test.sh installs them)"
    );
    ok
}

#[test]
fn every_fixture_track_round_trips_through_ffmpeg() {
    if !have_ffmpeg() {
        return;
    }
    let files = fixtures();
    assert!(!files.is_empty(), "the committed fixtures are missing");
    let dir = tempfile::tempdir().unwrap();
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let tracks = read_tracks(&path);
        let mut video_index = 0;
        let mut audio_index = 0;
        for (number, track) in &tracks {
            let video = track.configs[0].track_type == TRACK_TYPE_VIDEO;
            let map = if video {
                format!("0:v:{video_index}")
            } else {
                format!("0:a:{audio_index}")
            };
            if video {
                video_index += 1
            } else {
                audio_index += 1
            }
            let all_timings = timings(track);

            // Timeline invariants on the real sample pattern.
            for t in &all_timings {
                assert!(
                    t.samples.windows(2).all(|w| w[0].dts <= w[1].dts),
                    "{name}: dts decrease"
                );
                assert!(
                    t.samples
                        .iter()
                        .all(|s| s.dts <= s.pts && s.composition_offset >= 0),
                    "{name}: dts > pts"
                );
                assert_eq!(
                    t.samples.iter().map(|s| u64::from(s.duration)).sum::<u64>(),
                    t.duration
                );
            }

            let mut hashes = Vec::new();
            let mut probed = Vec::new();
            for epoch in 0..track.configs.len() {
                let file = dir
                    .path()
                    .join(format!("{name}_track{number}_epoch{epoch}.mp4"));
                std::fs::write(&file, build_file(track, epoch, &all_timings)).unwrap();
                hashes.extend(framemd5(&file, None));
                probed.extend(packets(&file));
                // Decoding the whole file prints nothing at -v error.
                let (_, stderr) = run(Command::new("ffmpeg")
                    .args(["-v", "error", "-i"])
                    .arg(&file)
                    .args(["-f", "null", "-"]));
                assert!(
                    stderr.trim().is_empty(),
                    "{name} track {number} epoch {epoch}: decode errors:\n{stderr}"
                );
            }
            let source = framemd5(&path, Some(&map));
            assert_eq!(
                hashes.len(),
                source.len(),
                "{name} track {number}: packet count"
            );
            assert!(
                hashes == source,
                "{name} track {number}: frame hashes differ from the source"
            );

            // ffmpeg reads back the PTS/DTS the timeline computed.
            let expected: Vec<(i64, i64)> = all_timings
                .iter()
                .flat_map(|t| t.samples.iter().map(|s| (s.pts as i64, s.dts as i64)))
                .collect();
            assert_eq!(
                probed, expected,
                "{name} track {number}: pts/dts as read by ffprobe"
            );
            if video {
                // Presentation times are the source's, exactly (ms → 90 kHz).
                let source_pts: Vec<i64> = track
                    .fragments
                    .iter()
                    .flat_map(|f| {
                        f.frames
                            .iter()
                            .map(|fr| (fr.pts_ns / 1_000_000 * 90) as i64)
                    })
                    .collect();
                let ours: Vec<i64> = probed.iter().map(|&(pts, _)| pts).collect();
                assert_eq!(ours, source_pts, "{name}: presentation times");
                let reordered = probed.iter().filter(|(pts, dts)| pts != dts).count();
                if name.contains("bframes") {
                    assert!(reordered > 0, "{name}: B-frames show as pts != dts");
                } else {
                    assert_eq!(reordered, 0, "{name}: no reordering without B-frames");
                }
            }
            eprintln!(
                "{name} track {number}: {} packets identical to the source",
                hashes.len()
            );
        }
    }
}

/// The timeline on the fixtures' real sample patterns, without ffmpeg.
#[test]
fn timeline_on_real_sample_patterns() {
    for path in fixtures() {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        for (number, track) in read_tracks(&path) {
            let all = timings(&track);
            let video = track.configs[0].track_type == TRACK_TYPE_VIDEO;
            for (fragment, t) in track.fragments.iter().zip(&all) {
                let source: Vec<u64> = fragment
                    .frames
                    .iter()
                    .map(|f| f.pts_ns / 1_000_000 * 90)
                    .collect();
                assert!(
                    t.samples.windows(2).all(|w| w[0].dts <= w[1].dts),
                    "{name}/{number}"
                );
                assert!(t
                    .samples
                    .iter()
                    .all(|s| s.composition_offset >= 0 && s.dts <= s.pts));
                assert_eq!(t.base_decode_time, t.samples[0].dts);
                if video {
                    // The PTS are the stored ones, sample by sample (so the set is unchanged).
                    let pts: Vec<u64> = t.samples.iter().map(|s| s.pts).collect();
                    assert_eq!(pts, source, "{name}/{number}");
                    let monotonic = source.windows(2).all(|w| w[0] < w[1]);
                    let offsets = t.samples.iter().any(|s| s.composition_offset != 0);
                    assert_eq!(
                        monotonic, !offsets,
                        "{name}/{number}: offsets iff PTS go back and forth"
                    );
                    assert_eq!(name.contains("bframes"), !monotonic, "{name}/{number}");
                }
            }
            // Video fragments follow each other without gap or overlap (same decode delay in
            // every GOP of these encodes).
            if video {
                for pair in all.windows(2) {
                    assert_eq!(
                        pair[0].base_decode_time + pair[0].duration,
                        pair[1].base_decode_time,
                        "{name}/{number}"
                    );
                }
            }
        }
    }
}
