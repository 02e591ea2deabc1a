//! Throughput of the MKV reader: the largest `tests/fixtures/*.mkv` (or a synthetic ~20 MB
//! KVS-style stream when there is none), fed in 64 KiB chunks and in one chunk.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use media::mkv::writer::{MasterSize, MkvWriter};
use media::mkv::{MkvReader, ReaderLimits, Track};
use std::path::PathBuf;

fn largest_fixture() -> Option<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "mkv"))
        .filter_map(|p| {
            Some((
                p.file_name()?.to_string_lossy().into_owned(),
                std::fs::read(&p).ok()?,
            ))
        })
        .max_by_key(|(_, bytes)| bytes.len())
}

/// ~20 MB: 1 s clusters of 30 video frames (one 60 KB key frame, 29 × 20 KB) and 47 audio frames.
fn synthetic_stream() -> Vec<u8> {
    let mut writer = MkvWriter::kvs();
    writer
        .ebml_header("matroska")
        .start_segment(MasterSize::Unknown)
        .info(1_000_000)
        .tracks(&[
            Track::new(1, 1, "V_MPEG4/ISO/AVC"),
            Track::new(2, 2, "A_AAC"),
        ]);
    let key = vec![0x65u8; 60_000];
    let delta = vec![0x41u8; 20_000];
    let audio = vec![0x21u8; 400];
    let mut cluster = 0u64;
    while writer.as_bytes().len() < 20_000_000 {
        writer.start_cluster(cluster * 1000, MasterSize::Unknown);
        for frame in 0..30i16 {
            let data = if frame == 0 { &key } else { &delta };
            writer.simple_block(1, frame * 33, frame == 0, data);
            writer.simple_block(2, frame * 33 + 1, false, &audio);
        }
        cluster += 1;
    }
    writer.finish()
}

fn parse(chunks: &[Bytes]) -> usize {
    let mut reader = MkvReader::new(ReaderLimits::default());
    let mut events = 0;
    for chunk in chunks {
        reader.push(chunk.clone());
        while reader.next_event().expect("bench input parses").is_some() {
            events += 1;
        }
    }
    while reader.finish().expect("bench input parses").is_some() {
        events += 1;
    }
    events
}

fn bench(c: &mut Criterion) {
    let (name, input) =
        largest_fixture().unwrap_or_else(|| ("synthetic".to_owned(), synthetic_stream()));
    let synthetic = Bytes::from(synthetic_stream());
    let input = Bytes::from(input);
    for (name, input) in [(name, input), ("synthetic-20MB".to_owned(), synthetic)] {
        let chunks_64k: Vec<Bytes> = (0..input.len())
            .step_by(64 * 1024)
            .map(|start| input.slice(start..(start + 64 * 1024).min(input.len())))
            .collect();
        let one = [input.clone()];
        assert!(parse(&one) > 100, "{name}: too few events");
        let mut group = c.benchmark_group(format!("mkv_reader/{name}"));
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function("64KiB-chunks", |b| b.iter(|| parse(&chunks_64k)));
        group.bench_function("one-chunk", |b| b.iter(|| parse(&one)));
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
