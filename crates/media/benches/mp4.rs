//! GetClip header throughput: `video_timing` + `audio_timing` for 200 one-second fragments of
//! 30 video frames (B-frames) and 47 AAC frames, then `clip_header` over all 400 chunks (what one
//! GetClip of the maximum fragment count costs before the stored bytes are streamed).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use media::fmp4::InitTrack;
use media::mp4::{clip_header, ClipChunk, ClipTrack};
use media::timeline::{audio_timing, video_timing, StoredSample};

/// 2025-11-24 in epoch ns, as the server's fragment timestamps are.
const START_NS: u64 = 1_764_000_000_000_000_000;
const FRAME_NS: i64 = 33_333_333;
const FRAGMENTS: u64 = 200;
/// A KVS producer's avcC (Main, level 4.2, 1920x1080).
const AVCC: [u8; 26] = [
    0x01, 0x4d, 0x00, 0x2a, 0xff, 0xe1, 0x00, 0x0b, 0x67, 0x4d, 0x00, 0x2a, 0x95, 0xa8, 0x1e, 0x00,
    0x89, 0xf9, 0x50, 0x01, 0x00, 0x04, 0x68, 0xee, 0x3c, 0x80,
];

fn video() -> Vec<StoredSample> {
    let order = (0..30i64).map(|i| {
        if i == 0 {
            0
        } else if i % 2 == 1 {
            (i + 1).min(29)
        } else {
            i - 1
        }
    });
    order
        .map(|f| StoredSample {
            pts_offset_ns: f * FRAME_NS,
            duration_ns: None,
            size: if f == 0 { 60_000 } else { 8_000 },
            keyframe: f == 0,
        })
        .collect()
}

fn audio() -> Vec<StoredSample> {
    (0..47)
        .map(|i| StoredSample {
            pts_offset_ns: i * 21_333_333,
            duration_ns: None,
            size: 370,
            keyframe: true,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let (v, a) = (video(), audio());
    let tracks = [
        ClipTrack {
            codec: InitTrack::Avc {
                avcc: &AVCC,
                width: 1280,
                height: 720,
            },
            timescale: 90_000,
        },
        ClipTrack {
            codec: InitTrack::Aac {
                asc: &[0x11, 0x90],
                sample_rate: 48_000,
                channels: 2,
            },
            timescale: 48_000,
        },
    ];
    let mut group = c.benchmark_group("mp4");
    group.throughput(Throughput::Elements(1));
    group.bench_function("timing+clip_header 200 fragments", |b| {
        b.iter(|| {
            let mut chunks = Vec::with_capacity(2 * FRAGMENTS as usize);
            for i in 0..FRAGMENTS {
                let start = START_NS + i * 1_000_000_000;
                let next = Some(start + 1_000_000_000);
                chunks.push(ClipChunk {
                    track: 0,
                    timing: video_timing(start, black_box(&v), 90_000, next).unwrap(),
                });
                chunks.push(ClipChunk {
                    track: 1,
                    timing: audio_timing(start, black_box(&a), 48_000, 1024).unwrap(),
                });
            }
            black_box(clip_header(&tracks, &chunks).unwrap().file_len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
