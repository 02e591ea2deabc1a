//! `media::mp4` (GetClip's progressive MP4 header): golden bytes, an independent parse-back with
//! `mp4-atom` (strict) of every table, 64-bit offsets, refused inputs, and a property test that
//! no input panics and every header written parses.

use media::fmp4::InitTrack;
use media::mp4::{clip_header, ClipChunk, ClipTrack, Mp4Error, FORMAT_VERSION, MOVIE_TIMESCALE};
use media::timeline::{audio_timing, video_timing, StoredSample, TimedSample, TrackTiming};
use mp4_atom::{Codec, Decode, Ftyp, Moov, StszSamples};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// A KVS producer's avcC (Main, level 4.2, 1920x1080; producer-sdk-cpp#109).
const AVCC_D1: &str = "014d002affe1000b674d002a95a81e0089f95001000468ee3c80";
/// AAC-LC, 48 kHz, stereo.
const ASC_LC_48K_STEREO: [u8; 2] = [0x11, 0x90];
/// 2025-11-24 in epoch ns, as fragment timestamps are.
const ORIGIN_NS: u64 = 1_764_000_000_000_000_000;
const FRAME_NS: i64 = 33_333_333;

/// SHA-256 of the golden clip header, pinned to [`FORMAT_VERSION`] 1.
const GOLDEN_CLIP_DIGEST: &str = "852fad905babe9d54bae2f38afa6eb3d58e12bd7ee04b3248c2853a4a3d64d0c";

/// Hex of `bytes`, and bytes of a hex string (the fixtures here are written in hex).
fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|x| format!("{x:02x}")).collect()
}

fn hex(text: &str) -> Vec<u8> {
    text.as_bytes()
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// One GOP of `n` frames decoded I P B P B …, presentation times as Matroska stores them.
fn gop(n: i64, size: u32) -> Vec<StoredSample> {
    let mut order = vec![0i64];
    let mut k = 1;
    while k < n {
        if k + 1 < n {
            order.extend([k + 1, k]);
            k += 2;
        } else {
            order.push(k);
            k += 1;
        }
    }
    order
        .into_iter()
        .map(|f| StoredSample {
            pts_offset_ns: f * FRAME_NS,
            duration_ns: None,
            size: size + f as u32,
            keyframe: f == 0,
        })
        .collect()
}

fn aac_frames(n: usize) -> Vec<StoredSample> {
    (0..n)
        .map(|i| StoredSample {
            pts_offset_ns: i as i64 * 21_333_333,
            duration_ns: None,
            size: 300 + i as u32,
            keyframe: true,
        })
        .collect()
}

/// Two one-second fragments of video with B-frames (the second after a 100 ms gap) and AAC that
/// starts 20 ms before the video, chunks interleaved per fragment as the store keeps them.
fn two_track_clip() -> (Vec<u8>, Vec<ClipChunk>) {
    let second = 1_000_000_000u64;
    let fragment_starts = [ORIGIN_NS, ORIGIN_NS + second + 100_000_000];
    let mut chunks = Vec::new();
    for (i, &start) in fragment_starts.iter().enumerate() {
        let next = fragment_starts.get(i + 1).copied();
        let video = video_timing(start, &gop(30, 1000), 90_000, next).unwrap();
        chunks.push(ClipChunk {
            track: 0,
            timing: video,
        });
        let audio = audio_timing(start - 20_000_000, &aac_frames(47), 48_000, 1024).unwrap();
        chunks.push(ClipChunk {
            track: 1,
            timing: audio,
        });
    }
    (hex(AVCC_D1), chunks)
}

fn tracks(avcc: &[u8]) -> Vec<ClipTrack<'_>> {
    vec![
        ClipTrack {
            codec: InitTrack::Avc {
                avcc,
                width: 1920,
                height: 1080,
            },
            timescale: 90_000,
        },
        ClipTrack {
            codec: InitTrack::Aac {
                asc: &ASC_LC_48K_STEREO,
                sample_rate: 48_000,
                channels: 2,
            },
            timescale: 48_000,
        },
    ]
}

/// Top-level boxes: (type, offset, size).
fn top_level(bytes: &[u8]) -> Vec<([u8; 4], usize, u64)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as u64;
        let kind: [u8; 4] = bytes[at + 4..at + 8].try_into().unwrap();
        let size = if size == 1 {
            u64::from_be_bytes(bytes[at + 8..at + 16].try_into().unwrap())
        } else {
            size
        };
        out.push((kind, at, size));
        if kind == *b"mdat" {
            break;
        }
        at += size as usize;
    }
    out
}

fn edit_list(trak: &mp4_atom::Trak) -> &[mp4_atom::ElstEntry] {
    &trak
        .edts
        .as_ref()
        .expect("edts")
        .elst
        .as_ref()
        .expect("elst")
        .entries
}

fn decode(bytes: &[u8]) -> (Ftyp, Moov) {
    let boxes = top_level(bytes);
    let kinds: Vec<[u8; 4]> = boxes.iter().map(|b| b.0).collect();
    assert_eq!(
        kinds,
        vec![*b"ftyp", *b"moov", *b"mdat"],
        "moov before mdat"
    );
    let mut buf = bytes;
    let ftyp = Ftyp::decode(&mut buf).expect("ftyp decodes");
    let moov = Moov::decode(&mut buf).expect("moov decodes");
    (ftyp, moov)
}

#[test]
fn clip_golden_and_parse_back() {
    let (avcc, chunks) = two_track_clip();
    let tracks = tracks(&avcc);
    let header = clip_header(&tracks, &chunks).unwrap();
    let media_len: u64 = chunks.iter().map(ClipChunk::len).sum();
    assert_eq!(header.media_len, media_len);
    assert_eq!(header.file_len(), header.bytes.len() as u64 + media_len);

    let (ftyp, moov) = decode(&header.bytes);
    assert_eq!(ftyp.major_brand, b"isom".into());
    assert_eq!(
        ftyp.compatible_brands,
        vec![b"isom".into(), b"iso2".into(), b"mp41".into()]
    );
    // The mdat header closes the header, sized for exactly the chunks.
    let mdat = &header.bytes[header.bytes.len() - 8..];
    assert_eq!(&mdat[4..], b"mdat");
    assert_eq!(
        u32::from_be_bytes(mdat[..4].try_into().unwrap()) as u64,
        media_len + 8
    );

    assert_eq!(moov.mvhd.timescale, MOVIE_TIMESCALE);
    assert_eq!(moov.mvhd.next_track_id, 3);
    assert_eq!(moov.trak.len(), 2);
    let video = &moov.trak[0];
    let audio = &moov.trak[1];
    assert_eq!((video.tkhd.track_id, audio.tkhd.track_id), (1, 2));
    assert_eq!(video.mdia.hdlr.handler, b"vide".into());
    assert_eq!(audio.mdia.hdlr.handler, b"soun".into());
    assert!(matches!(
        video.mdia.minf.stbl.stsd.codecs[0],
        Codec::Avc1(_)
    ));
    assert!(matches!(
        audio.mdia.minf.stbl.stsd.codecs[0],
        Codec::Mp4a(_)
    ));

    // Video: 60 samples, two chunks of 30, durations of 3000 ticks except the first fragment's
    // last sample, which runs on over the 100 ms gap to the second fragment's first decode time.
    let stbl = &video.mdia.minf.stbl;
    let StszSamples::Different { sizes } = &stbl.stsz.samples else {
        panic!("per-sample sizes")
    };
    let expected_sizes: Vec<u32> = chunks
        .iter()
        .filter(|c| c.track == 0)
        .flat_map(|c| c.timing.samples.iter().map(|s| s.size))
        .collect();
    assert_eq!(sizes, &expected_sizes);
    let durations: Vec<u32> = stbl
        .stts
        .entries
        .iter()
        .flat_map(|e| std::iter::repeat_n(e.sample_delta, e.sample_count as usize))
        .collect();
    assert_eq!(durations.len(), 60);
    assert_eq!(
        durations.iter().map(|&d| u64::from(d)).sum::<u64>(),
        video.mdia.mdhd.duration
    );
    let first = &chunks[0].timing;
    let second = &chunks[2].timing;
    assert_eq!(
        u64::from(durations[29]),
        second.base_decode_time - first.samples[29].dts,
        "the gap is held by the last frame"
    );
    assert_eq!(second.base_decode_time - first.base_decode_time, 99_000);
    let ctts = stbl.ctts.as_ref().expect("B-frames need ctts");
    let offsets: Vec<i64> = ctts
        .entries
        .iter()
        .flat_map(|e| std::iter::repeat_n(e.sample_offset, e.sample_count as usize))
        .collect();
    let expected_offsets: Vec<i64> = chunks
        .iter()
        .filter(|c| c.track == 0)
        .flat_map(|c| {
            c.timing
                .samples
                .iter()
                .map(|s| i64::from(s.composition_offset))
        })
        .collect();
    assert_eq!(offsets, expected_offsets);
    assert_eq!(stbl.stss.as_ref().expect("stss").entries, vec![1, 31]);
    assert_eq!(stbl.stsc.entries.len(), 1);
    assert_eq!(
        (
            stbl.stsc.entries[0].first_chunk,
            stbl.stsc.entries[0].samples_per_chunk
        ),
        (1, 30)
    );
    // Chunk offsets: the chunks follow the header in the order given.
    let mut offset = header.bytes.len() as u64;
    let mut expected_offsets = [Vec::new(), Vec::new()];
    for c in &chunks {
        expected_offsets[c.track].push(offset as u32);
        offset += c.len();
    }
    assert_eq!(
        stbl.stco.as_ref().expect("stco").entries,
        expected_offsets[0]
    );
    assert!(stbl.co64.is_none());
    let astbl = &audio.mdia.minf.stbl;
    assert_eq!(
        astbl.stco.as_ref().expect("stco").entries,
        expected_offsets[1]
    );
    assert!(astbl.ctts.is_none() && astbl.stss.is_none());
    assert_eq!(audio.mdia.mdhd.timescale, 48_000);

    // Edits: audio starts first (20 ms before the video's first picture); the video's media edit
    // skips its B-frame decode delay (one frame: 3000 ticks).
    let velst = edit_list(video);
    assert_eq!(velst.len(), 2);
    assert_eq!(velst[0].media_time, None, "empty edit");
    assert_eq!(velst[0].segment_duration, 20);
    assert_eq!(velst[1].media_time, Some(3000));
    let aelst = edit_list(audio);
    assert_eq!(aelst.len(), 1);
    assert_eq!(aelst[0].media_time, Some(0));
    assert_eq!(
        moov.mvhd.duration,
        video.tkhd.duration.max(audio.tkhd.duration)
    );

    assert_eq!(FORMAT_VERSION, 1, "re-pin GOLDEN_CLIP_DIGEST");
    assert_eq!(
        to_hex(&Sha256::digest(&header.bytes)),
        GOLDEN_CLIP_DIGEST,
        "clip header bytes changed: {}",
        to_hex(&header.bytes)
    );
}

/// The first box, byte for byte: ftyp major isom, minor 512, compatible isom iso2 mp41.
#[test]
fn ftyp_golden() {
    let (avcc, chunks) = two_track_clip();
    let header = clip_header(&tracks(&avcc), &chunks).unwrap();
    assert_eq!(
        to_hex(&header.bytes[..28]),
        concat!(
            "0000001c", "66747970", // size 28, ftyp
            "69736f6d", "00000200", // major_brand isom, minor_version 512
            "69736f6d", "69736f32", "6d703431", // compatible_brands isom iso2 mp41
        )
    );
}

/// Chunks past 4 GiB: 64-bit chunk offsets (`co64`) and an `mdat` largesize; no media byte is
/// needed to write the header.
#[test]
fn offsets_past_4_gib_use_co64_and_largesize() {
    let big = |start: u64| {
        let samples: Vec<StoredSample> = (0..2)
            .map(|i| StoredSample {
                pts_offset_ns: i * FRAME_NS,
                duration_ns: None,
                size: 3_000_000_000,
                keyframe: i == 0,
            })
            .collect();
        video_timing(start, &samples, 90_000, None).unwrap()
    };
    let avcc = hex(AVCC_D1);
    let tracks = &tracks(&avcc)[..1];
    let chunks = vec![
        ClipChunk {
            track: 0,
            timing: big(ORIGIN_NS),
        },
        ClipChunk {
            track: 0,
            timing: big(ORIGIN_NS + 66_666_666),
        },
    ];
    let header = clip_header(tracks, &chunks).unwrap();
    assert_eq!(header.media_len, 12_000_000_000);
    let boxes = top_level(&header.bytes);
    let (kind, at, size) = *boxes.last().unwrap();
    assert_eq!(&kind, b"mdat");
    assert_eq!(at + 16, header.bytes.len(), "16-byte mdat header");
    assert_eq!(size, 12_000_000_000 + 16);
    let (_, moov) = decode(&header.bytes);
    let stbl = &moov.trak[0].mdia.minf.stbl;
    assert!(stbl.stco.is_none());
    let h = header.bytes.len() as u64;
    assert_eq!(
        stbl.co64.as_ref().unwrap().entries,
        vec![h, h + 6_000_000_000]
    );
}

#[test]
fn bad_inputs_are_errors() {
    let (avcc, chunks) = two_track_clip();
    let tracks = tracks(&avcc);
    assert_eq!(clip_header(&[], &chunks), Err(Mp4Error::NoTracks));
    assert_eq!(
        clip_header(&tracks, &chunks[..1]),
        Err(Mp4Error::EmptyTrack(1))
    );
    let mut wrong = chunks.clone();
    wrong[1].track = 5;
    assert_eq!(
        clip_header(&tracks, &wrong),
        Err(Mp4Error::UnknownTrack { chunk: 1, track: 5 })
    );
    let mut empty = chunks.clone();
    empty[0].timing.samples.clear();
    assert_eq!(clip_header(&tracks, &empty), Err(Mp4Error::BadChunk(0)));
    let mut other_scale = chunks.clone();
    other_scale[1].timing.timescale = 44_100;
    assert_eq!(
        clip_header(&tracks, &other_scale),
        Err(Mp4Error::BadChunk(1))
    );
    let bad = [ClipTrack {
        codec: InitTrack::Avc {
            avcc: &[1, 0x64, 0],
            width: 1,
            height: 1,
        },
        timescale: 90_000,
    }];
    assert!(matches!(
        clip_header(&bad, &chunks[..1]),
        Err(Mp4Error::Codec { track: 0, .. })
    ));
}

fn arbitrary_timing() -> impl Strategy<Value = TrackTiming> {
    let sample = (
        any::<u32>(),
        any::<i32>(),
        0u32..100_000,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |(duration, composition_offset, size, sync, dts)| TimedSample {
                duration,
                composition_offset,
                size,
                sync,
                pts: dts,
                dts,
            },
        );
    (
        prop_oneof![Just(90_000u32), Just(48_000u32), 1u32..1000],
        any::<u64>(),
        proptest::collection::vec(sample, 0..20),
    )
        .prop_map(|(timescale, base_decode_time, samples)| TrackTiming {
            timescale,
            base_decode_time,
            duration: 0,
            samples,
        })
}

proptest! {
    /// Any chunks, any timings: an error or a header that parses, whose sample count and
    /// length match the input. Never a panic.
    #[test]
    fn never_panics_and_parses_when_written(
        chunks in proptest::collection::vec((0usize..3, arbitrary_timing()), 0..8)
    ) {
        let avcc = hex(AVCC_D1);
        let tracks = tracks(&avcc);
        let chunks: Vec<ClipChunk> = chunks
            .into_iter()
            .map(|(track, mut timing)| {
                // Mostly the track's own timescale, so most inputs are accepted.
                if let Some(t) = tracks.get(track) {
                    if timing.timescale != 1 {
                        timing.timescale = t.timescale;
                    }
                }
                ClipChunk { track, timing }
            })
            .collect();
        if let Ok(header) = clip_header(&tracks, &chunks) {
            let (_, moov) = decode(&header.bytes);
            let samples: usize = moov
                .trak
                .iter()
                .map(|t| match &t.mdia.minf.stbl.stsz.samples {
                    StszSamples::Different { sizes } => sizes.len(),
                    StszSamples::Identical { count, .. } => *count as usize,
                })
                .sum();
            let expected: usize = chunks.iter().map(|c| c.timing.samples.len()).sum();
            prop_assert_eq!(samples, expected);
            prop_assert_eq!(header.media_len, chunks.iter().map(ClipChunk::len).sum::<u64>());
        }
    }
}
