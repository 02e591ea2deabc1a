//! fMP4 media segment header throughput: `video_timing` + `media_segment_header` for a
//! 30-frame 1-second video fragment with B-frames (what one GetMP4MediaFragment request costs
//! before the sample bytes are streamed). Reported as segments/s (criterion "elements").

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use media::fmp4::{media_segment_header, media_segment_len};
use media::timeline::{video_timing, StoredSample};

/// 2025-11-24 in epoch ns, as the server's fragment timestamps are.
const START_NS: u64 = 1_764_000_000_000_000_000;
const FRAME_NS: i64 = 33_333_333;

/// One GOP of 30 frames decoded I P B B P B B …, sizes like a 2 Mb/s 720p stream.
fn fragment() -> Vec<StoredSample> {
    let mut order = vec![0i64];
    let mut k = 1;
    while k < 30 {
        let b = 2.min(29 - k);
        order.push(k + b);
        order.extend(k..k + b);
        k += b + 1;
    }
    order
        .into_iter()
        .map(|f| StoredSample {
            pts_offset_ns: f * FRAME_NS,
            duration_ns: None,
            size: if f == 0 { 60_000 } else { 8_000 },
            keyframe: f == 0,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let samples = fragment();
    let next = Some(START_NS + 30 * FRAME_NS as u64);
    let mut group = c.benchmark_group("fmp4");
    group.throughput(Throughput::Elements(1));
    group.bench_function("timing+media_segment_header 30 frames", |b| {
        b.iter(|| {
            let timing =
                video_timing(black_box(START_NS), black_box(&samples), 90_000, next).unwrap();
            let header = media_segment_header(1, &timing).unwrap();
            black_box(media_segment_len(&timing) + header.len() as u64)
        })
    });
    let timing = video_timing(START_NS, &samples, 90_000, next).unwrap();
    group.bench_function("media_segment_header only 30 frames", |b| {
        b.iter(|| black_box(media_segment_header(1, black_box(&timing)).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
