//! MPEG-TS packaging throughput: `mux_segment_into` for a 1-second 720p-like fragment (30 H.264
//! frames decoded I P B B …, a 60 kB key frame and 8 kB others, ~2 Mb/s, each frame 3 NAL units:
//! SEI + 2 slices) plus 47 AAC frames of 384 bytes (~144 kb/s). Reported as MB/s of TS output
//! (criterion "bytes"); the output buffer is reused, as a server would per connection.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use media::codec::{AacConfig, AvcConfig};
use media::timeline::{audio_timing, video_timing, StoredSample};
use media::ts::{mux_segment_into, segment_len, TsCodec, TsTrack};

/// Session-timeline start of the fragment (1 s).
const START_NS: u64 = 1_000_000_000;
const FRAME_NS: i64 = 33_333_333;
/// avcC of tests/fixtures/h264_aac.mkv.
const AVCC: &str =
    "0164000dffe100176764000dacb40a0fd80880000003008000001e078a155001000468ef0fcbfdf8f800";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// One AVCC sample of `size` bytes: an SEI and two slices with 4-byte lengths.
fn avcc_sample(size: usize, key: bool) -> Vec<u8> {
    let slice_type = if key { 0x65 } else { 0x41 };
    let sei = 20;
    let rest = size - 3 * 4 - sei;
    let (a, b) = (rest / 2, rest - rest / 2);
    let mut out = Vec::with_capacity(size);
    for (t, len) in [(0x06u8, sei), (slice_type, a), (slice_type, b)] {
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.push(t);
        out.extend((1..len).map(|i| (i * 7 + 1) as u8 | 1));
    }
    out
}

fn bench(c: &mut Criterion) {
    let avc = AvcConfig::parse(&hex(AVCC)).unwrap();
    let aac = AacConfig::parse(&[0x11, 0x90]).unwrap();
    let mut order = vec![0i64];
    let mut k = 1;
    while k < 30 {
        let b = 2.min(29 - k);
        order.push(k + b);
        order.extend(k..k + b);
        k += b + 1;
    }
    let mut video_data = Vec::new();
    let video_samples: Vec<StoredSample> = order
        .iter()
        .map(|&f| {
            let sample = avcc_sample(if f == 0 { 60_000 } else { 8_000 }, f == 0);
            video_data.extend_from_slice(&sample);
            StoredSample {
                pts_offset_ns: f * FRAME_NS,
                duration_ns: None,
                size: sample.len() as u32,
                keyframe: f == 0,
            }
        })
        .collect();
    let video = video_timing(
        START_NS,
        &video_samples,
        90_000,
        Some(START_NS + 30 * FRAME_NS as u64),
    )
    .unwrap();
    let audio_samples: Vec<StoredSample> = (0..47)
        .map(|i| StoredSample {
            pts_offset_ns: i * 21_333_333,
            duration_ns: None,
            size: 384,
            keyframe: true,
        })
        .collect();
    let audio_data: Vec<u8> = (0..47 * 384).map(|i| (i % 251) as u8).collect();
    let audio = audio_timing(START_NS, &audio_samples, 48_000, 1024).unwrap();
    let tracks = [
        TsTrack {
            codec: TsCodec::Avc(&avc),
            timing: &video,
            data: &video_data,
        },
        TsTrack {
            codec: TsCodec::Aac(&aac),
            timing: &audio,
            data: &audio_data,
        },
    ];
    let len = segment_len(&tracks).unwrap();
    let input = video_data.len() + audio_data.len();
    eprintln!(
        "720p-like fragment: {input} B of samples → {len} B of TS ({:+.2} %)",
        (len as f64 / input as f64 - 1.0) * 100.0
    );
    let mut group = c.benchmark_group("ts");
    group.throughput(Throughput::Bytes(len as u64));
    let mut out = Vec::with_capacity(len);
    group.bench_function("mux_segment 1 s 720p-like A/V", |b| {
        b.iter(|| {
            out.clear();
            mux_segment_into(black_box(&tracks), &mut out).unwrap();
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
