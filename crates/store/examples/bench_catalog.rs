//! The PostgreSQL catalog at scale (issue #9): bulk-loads a catalog of N fragments over many
//! streams into the schema [`PgCatalog::connect`] creates, then times the queries the server asks
//! through the real [`Catalog`] API. Driven by scripts/bench-catalog.sh, which starts a private
//! cluster and grows one database from one size to the next:
//!
//! ```text
//! bench_catalog grow URL ROWS        # add fragments until the catalog holds ROWS of them
//! bench_catalog measure URL ROWS     # time every query; TSV lines on stdout
//! bench_catalog report FILE          # the table of p50/p99 per size, and p99(last)/p99(first)
//! ```
//!
//! An example rather than a `[[bench]]`: it needs a running PostgreSQL and takes subcommands
//! (the database grows between measurements), which a bench harness does not fit.
//!
//! The rows are what ingest writes for a 2-second 720p30 H.264 + 48 kHz AAC fragment: 60 video
//! samples (one keyframe) and 94 AAC samples with millisecond-precision timestamps, encoded with
//! the catalog's own sample-table encoding; sequence and continuity come from [`StreamEdge`], as
//! [`Catalog::insert_fragments`] computes them. Streams record concurrently, so rows are loaded in
//! time order interleaved across streams (a stream's rows are spread over the heap, as in
//! production). Env: `OPENKVS_BENCH_STREAMS` (default 100), `OPENKVS_BENCH_CALLS` (default 2000).

use std::collections::BTreeMap;
use std::pin::pin;
use std::time::{Duration, Instant};

use media::TrackNumber;
use store::postgres::PgCatalog;
use store::{
    Catalog, CodecConfig, CodecConfigId, FragmentNumber, FragmentQuery, FragmentTrack,
    MediaLocation, NewFragment, NewStream, SampleEntry, StreamEdge, StreamId, Timestamp,
    TimestampKind,
};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::NoTls;

/// Epoch ms of every stream's first fragment (realistic, so fragment numbers have their width).
const T0: i64 = 1_760_000_000_000;
const FRAGMENT_MS: i64 = 2_000;
const HOUR_MS: i64 = 3_600_000;
/// Rows per COPY transaction.
const BATCH: u64 = 200_000;
/// The last streams are the ones retention is measured on; queries sample the others.
const RETENTION_STREAMS: usize = 8;
/// The HLS ON_DEMAND window the issue asks for (MaxMediaPlaylistFragmentResults = 5000).
const ON_DEMAND: usize = 5_000;
/// crates/server/src/hls/serve.rs `PAGE`: the page size the server walks a window with.
const SERVER_PAGE: usize = 1_000;
/// crates/server/src/archived.rs `LIST_FRAGMENTS_DEFAULT`.
const LIST_DEFAULT: usize = 1_000;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["grow", url, rows] => grow(url, rows.parse()?).await,
        ["measure", url, rows] => measure(url, rows.parse()?).await,
        ["report", file] => report(file),
        _ => Err("usage: bench_catalog grow URL ROWS | measure URL ROWS | report FILE".into()),
    }
}

/// splitmix64: a deterministic stream of numbers per (stream, fragment), so growing later
/// continues the same streams without storing the generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct BenchStream {
    index: usize,
    id: StreamId,
    video: CodecConfigId,
    audio: CodecConfigId,
    edge: StreamEdge,
}

fn stream_name(index: usize) -> String {
    format!("bench-camera-{index:05}")
}

fn new_stream(index: usize) -> NewStream {
    let name = stream_name(index);
    NewStream {
        arn: format!("arn:aws:kinesisvideo:us-east-1:000000000000:stream/{name}/1"),
        name,
        device_name: Some(format!("camera-{index}")),
        media_type: Some("video/h264,audio/aac".into()),
        kms_key_id: "arn:aws:kms:us-east-1:000000000000:alias/aws/kinesisvideo".into(),
        version: "v1".into(),
        creation_time: Timestamp(T0 - 60_000),
        data_retention_hours: 72,
        storage_tier: "HOT".into(),
        tags: BTreeMap::from([("site".to_string(), format!("site-{}", index % 17))]),
    }
}

/// An H.264 High-profile SPS/PPS (crates/server/tests/hls_modes.rs `CPD_B`) and a 48 kHz stereo
/// AAC-LC config: the server decodes them to build playlists.
const AVC_CPD: &str =
    "0164001effe100196764001eacb405017fcb8088000003000800000301e078b17501000468ef0fcbfdf8f800";
const AAC_CPD: [u8; 2] = [0x11, 0x90];

fn configs() -> (CodecConfig, CodecConfig) {
    let cpd: Vec<u8> = (0..AVC_CPD.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&AVC_CPD[i..i + 2], 16).unwrap_or(0))
        .collect();
    let video = CodecConfig {
        track: TrackNumber(1),
        track_type: 1,
        codec_id: "V_MPEG4/ISO/AVC".into(),
        codec_private: cpd.into(),
        track_name: Some("kvs_video_track".into()),
        pixel_width: Some(1280),
        pixel_height: Some(720),
        sampling_frequency: None,
        channels: None,
    };
    let audio = CodecConfig {
        track: TrackNumber(2),
        track_type: 2,
        codec_id: "A_AAC".into(),
        codec_private: bytes::Bytes::from_static(&AAC_CPD),
        track_name: Some("kvs_audio_track".into()),
        pixel_width: None,
        pixel_height: None,
        sampling_frequency: Some(48_000.0),
        channels: Some(2),
    };
    (video, audio)
}

/// Fragment `i` of stream `s`: 2 s of 720p30 H.264 (~2 Mbit/s) and AAC, as ingest stores it
/// (block timestamps in milliseconds, no block durations).
fn fragment(s: &BenchStream, i: u64) -> NewFragment {
    let mut rng = Rng(((s.index as u64) << 40) ^ i);
    let producer = T0 + s.index as i64 * 13 + i as i64 * FRAGMENT_MS;
    // Arrival latency with jitter below the 50 ms gap threshold: no server-side discontinuity.
    let server = producer + 250 + rng.below(40) as i64;
    let mut video = Vec::with_capacity(60);
    let mut video_len = 0u64;
    for k in 0..60i64 {
        let size = if k == 0 {
            40_000 + rng.below(30_000)
        } else {
            4_000 + rng.below(9_000)
        } as u32;
        video_len += u64::from(size);
        video.push(SampleEntry {
            pts_offset_ns: (k * 1000 + 15) / 30 * 1_000_000,
            duration_ns: None,
            size,
            keyframe: k == 0,
        });
    }
    let mut audio = Vec::with_capacity(94);
    let mut audio_len = 0u64;
    for k in 0..94i64 {
        let size = 300 + rng.below(150) as u32;
        audio_len += u64::from(size);
        audio.push(SampleEntry {
            pts_offset_ns: (k * 1024 * 1000 + 24_000) / 48_000 * 1_000_000,
            duration_ns: None,
            size,
            keyframe: true,
        });
    }
    let len = video_len + audio_len + 1_200; // plus the MKV cluster and block headers
                                             // About a minute of one stream per segment file.
    let per_segment = 30;
    NewFragment {
        stream: s.id,
        number: FragmentNumber::candidate(Timestamp(server)),
        producer_timestamp: Timestamp(producer),
        server_timestamp: Timestamp(server),
        duration_ms: FRAGMENT_MS as u64,
        cluster_timecode_ms: producer,
        tracks: vec![
            FragmentTrack {
                track: TrackNumber(1),
                codec_config: s.video,
                data_offset: 0,
                data_len: video_len,
                samples: video,
            },
            FragmentTrack {
                track: TrackNumber(2),
                codec_config: s.audio,
                data_offset: video_len,
                data_len: audio_len,
                samples: audio,
            },
        ],
        tags: Vec::new(),
        writer_epoch: None,
        begins_discontinuity: false,
        media: MediaLocation {
            segment: i / per_segment,
            offset: (i % per_segment) * 600_000,
            len,
        },
    }
}

async fn raw_client(url: &str) -> Result<tokio_postgres::Client, Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection: {e}");
        }
    });
    Ok(client)
}

/// The benchmark's streams, created (with their codec configs) through the catalog API if
/// missing, with each one's ingest edge as stored.
async fn streams(
    catalog: &PgCatalog,
    client: &tokio_postgres::Client,
    n: usize,
) -> Result<Vec<BenchStream>, Error> {
    let (video, audio) = configs();
    let mut out = Vec::with_capacity(n);
    for index in 0..n {
        let record = match catalog.stream_by_name(&stream_name(index)).await? {
            Some(r) => r,
            None => catalog.create_stream(new_stream(index)).await?,
        };
        let video = catalog.codec_config_for(record.id, &video).await?;
        let audio = catalog.codec_config_for(record.id, &audio).await?;
        let row = client
            .query_one(
                "SELECT ingest_state FROM stream WHERE id = $1",
                &[&record.id.0],
            )
            .await?;
        let state: Option<String> = row.get(0);
        let edge = match state {
            Some(json) => serde_json::from_str(&json)?,
            None => StreamEdge::default(),
        };
        out.push(BenchStream {
            index,
            id: record.id,
            video,
            audio,
            edge,
        });
    }
    Ok(out)
}

/// Adds fragments (in time order, all streams recording) until the catalog holds `target` rows
/// ever ingested, with binary COPY; then stores each stream's edge as insert_fragments would.
async fn grow(url: &str, target: u64) -> Result<(), Error> {
    let n = env_usize("OPENKVS_BENCH_STREAMS", 100);
    let catalog = PgCatalog::connect(url).await?;
    let client = raw_client(url).await?;
    let mut streams = streams(&catalog, &client, n).await?;
    let have: u64 = streams.iter().map(|s| s.edge.next_sequence()).sum();
    if have >= target {
        eprintln!("catalog already holds {have} fragments ingested");
        return Ok(());
    }
    let per_stream = target.div_ceil(n as u64);
    let started = Instant::now();
    let types = [
        Type::INT8,
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::BYTEA,
        Type::TEXT,
        Type::INT8,
        Type::INT2,
        Type::TEXT,
        Type::BYTEA,
    ];
    let mut written = 0u64;
    let mut i = streams
        .iter()
        .map(|s| s.edge.next_sequence())
        .min()
        .unwrap_or(0);
    while i < per_stream {
        let sink = client
            .copy_in(
                "COPY fragment (stream_id, number, producer_ms, server_ms, duration_ms, size_bytes, \
                 segment, byte_offset, len, tracks, tags, sequence, continuity_flags, \
                 continuity_counts, summary) FROM STDIN BINARY",
            )
            .await?;
        let mut writer = pin!(BinaryCopyInWriter::new(sink, &types));
        let mut in_batch = 0u64;
        while i < per_stream && in_batch < BATCH {
            for s in streams.iter_mut() {
                if s.edge.next_sequence() != i {
                    continue;
                }
                let f = fragment(s, i);
                let (sequence, continuity) = s.edge.advance(&f);
                let tags: Option<String> = None;
                let row: [&(dyn ToSql + Sync); 15] = [
                    &f.stream.0,
                    &f.number.to_string(),
                    &f.producer_timestamp.0,
                    &f.server_timestamp.0,
                    &(f.duration_ms as i64),
                    &(f.media.len as i64),
                    &(f.media.segment as i64),
                    &(f.media.offset as i64),
                    &(f.media.len as i64),
                    &store::encode_sample_tables(&f.tracks),
                    &tags,
                    &(sequence as i64),
                    &i16::from(continuity.flags),
                    &serde_json::to_string(&continuity.counts)?,
                    &store::encode_track_summaries(&f.tracks),
                ];
                writer.as_mut().write(&row).await?;
                in_batch += 1;
            }
            i += 1;
        }
        writer.finish().await?;
        written += in_batch;
        // The edge with the rows: insert_fragments keeps both in one transaction.
        for s in &streams {
            let last = s
                .edge
                .next_sequence()
                .checked_sub(1)
                .map(|last| fragment(s, last).number.to_string());
            client
                .execute(
                    "UPDATE stream SET last_fragment_number = $2, ingest_state = $3 WHERE id = $1",
                    &[&s.id.0, &last, &serde_json::to_string(&s.edge)?],
                )
                .await?;
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "  {} fragments loaded ({:.0} rows/s)",
            have + written,
            written as f64 / secs
        );
    }
    eprintln!("VACUUM ANALYZE fragment …");
    client.batch_execute("VACUUM (ANALYZE) fragment").await?;
    let row = client
        .query_one(
            "SELECT pg_size_pretty(pg_database_size(current_database())), \
             pg_size_pretty(pg_relation_size('fragment')), \
             pg_size_pretty(pg_indexes_size('fragment')), \
             pg_size_pretty(pg_total_relation_size('fragment') - pg_relation_size('fragment') - pg_indexes_size('fragment'))",
            &[],
        )
        .await?;
    let (db, heap, idx, toast): (String, String, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    eprintln!(
        "grown to {} fragments over {n} streams in {:.0} s: database {db} (fragment heap {heap}, \
         indexes {idx}, toast {toast})",
        have + written,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Latencies of one query, in seconds.
struct Timings(Vec<f64>);

impl Timings {
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        // Nearest rank.
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
}

/// What the measurement samples: a stream and its ingested range.
struct Target {
    id: StreamId,
    first: FragmentRecordLite,
    count: u64,
}

struct FragmentRecordLite {
    producer: i64,
    server: i64,
}

async fn time<F, Fut>(calls: usize, mut f: F) -> Result<Timings, Error>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<usize, Error>>,
{
    // A tenth as warm-up, not counted (prepared statements, pool connections).
    for k in 0..calls / 10 {
        f(k).await?;
    }
    let mut out = Vec::with_capacity(calls);
    for k in 0..calls {
        let started = Instant::now();
        f(k).await?;
        out.push(started.elapsed().as_secs_f64());
    }
    Ok(Timings(out))
}

fn emit(rows: u64, query: &str, t: &Timings, note: &str) {
    println!(
        "{rows}\t{query}\t{}\t{:.3}\t{:.3}\t{:.3}\t{note}",
        t.0.len(),
        t.pct(50.0) * 1e3,
        t.pct(99.0) * 1e3,
        t.pct(100.0) * 1e3
    );
}

/// ON_DEMAND as crates/server/src/hls/serve.rs `walk_range` asks for it: pages of at most 1000
/// with a keyset, never more rows than can still be kept plus the one that ends the walk.
async fn on_demand_walk(
    catalog: &PgCatalog,
    stream: StreamId,
    start: Timestamp,
    end: Timestamp,
    max: usize,
) -> Result<usize, Error> {
    let mut kept = 0usize;
    let mut after = None;
    loop {
        let limit = SERVER_PAGE.min(max - kept + 1);
        let page = catalog
            .query_fragment_summaries(FragmentQuery {
                stream,
                kind: TimestampKind::Producer,
                start,
                end,
                after,
                limit,
            })
            .await?;
        let full = page.len() == limit;
        for f in &page {
            if kept >= max {
                return Ok(kept);
            }
            after = Some((f.producer_timestamp, f.number));
            kept += 1;
        }
        if !full {
            return Ok(kept);
        }
    }
}

async fn measure(url: &str, rows: u64) -> Result<(), Error> {
    let calls = env_usize("OPENKVS_BENCH_CALLS", 2000);
    let catalog = PgCatalog::connect(url).await?;
    let all = catalog.all_streams().await?;
    let mut targets = Vec::new();
    for s in &all {
        let first = catalog
            .query_fragments(FragmentQuery {
                stream: s.id,
                kind: TimestampKind::Server,
                start: Timestamp(i64::MIN),
                end: Timestamp(i64::MAX),
                after: None,
                limit: 1,
            })
            .await?;
        let last = catalog.latest_fragments(s.id, 1).await?;
        if let (Some(first), Some(last)) = (first.first(), last.first()) {
            targets.push(Target {
                id: s.id,
                first: FragmentRecordLite {
                    producer: first.producer_timestamp.0,
                    server: first.server_timestamp.0,
                },
                count: last.sequence - first.sequence + 1,
            });
        }
    }
    if targets.len() <= RETENTION_STREAMS {
        return Err("too few streams".into());
    }
    let retention_targets = targets.split_off(targets.len() - RETENTION_STREAMS);
    let mut rng = Rng(rows);
    let mut pick = |window: u64| {
        let t = &targets[rng.below(targets.len() as u64) as usize];
        let i = rng.below(t.count.saturating_sub(window).max(1));
        (t.id, t, i)
    };
    // Fragment i of a target: producer and server times advance by FRAGMENT_MS per fragment
    // (the server's jitter is below 40 ms), so i * FRAGMENT_MS from the first lands on it.
    let at = |t: &Target, i: u64| t.first.producer + i as i64 * FRAGMENT_MS;
    let at_server = |t: &Target, i: u64| t.first.server + i as i64 * FRAGMENT_MS;

    let mut picks: Vec<(StreamId, i64, i64, u64)> = (0..calls + calls / 10)
        .map(|_| {
            let (id, t, i) = pick(ON_DEMAND as u64 + 1);
            (id, at(t, i), at_server(t, i), i)
        })
        .collect();
    let ids: Vec<StreamId> = picks.iter().map(|p| p.0).collect();

    let t = time(calls, |k| {
        let c = &catalog;
        let s = ids[k];
        async move { Ok(c.latest_fragments(s, 5).await?.len()) }
    })
    .await?;
    emit(
        rows,
        "live edge: latest_fragments(5)",
        &t,
        "HLS LIVE window (MaxMediaPlaylistFragmentResults default 5)",
    );
    let t = time(calls, |k| {
        let c = &catalog;
        let s = ids[k];
        async move { Ok(c.latest_fragments(s, 1).await?.len()) }
    })
    .await?;
    emit(
        rows,
        "live edge: latest_fragments(1)",
        &t,
        "GetHLSStreamingSessionURL LIVE",
    );
    let t = time(calls, |k| {
        let c = &catalog;
        let s = ids[k];
        async move { Ok(c.last_fragment_number(s).await?.map_or(0, |_| 1)) }
    })
    .await?;
    emit(
        rows,
        "last_fragment_number",
        &t,
        "every LIVE media-playlist request",
    );
    // Point lookups: fragment numbers of existing rows, read back by number.
    let mut numbers = Vec::with_capacity(calls + calls / 10);
    for (id, _, server, _) in picks.iter().take(calls + calls / 10) {
        let f = catalog
            .query_fragments(FragmentQuery {
                stream: *id,
                kind: TimestampKind::Server,
                start: Timestamp(*server - 100),
                end: Timestamp(i64::MAX),
                after: None,
                limit: 1,
            })
            .await?;
        numbers.push((*id, f.first().map_or(FragmentNumber(0), |f| f.number)));
    }
    let t = time(calls, |k| {
        let c = &catalog;
        let (s, n) = numbers[k];
        async move { Ok(c.fragment(s, n).await?.map_or(0, |_| 1)) }
    })
    .await?;
    emit(
        rows,
        "point: fragment(stream, number)",
        &t,
        "GetMediaForFragmentList, getMP4MediaFragment",
    );
    for (limit, label) in [
        (100, "ListFragments page: MaxResults 100"),
        (LIST_DEFAULT, "ListFragments page: default 1000"),
    ] {
        let n = if limit > 100 { calls / 4 } else { calls };
        let t = time(n, |k| {
            let c = &catalog;
            let (s, _, server, _) = picks[k];
            async move {
                // One hour of SERVER_TIMESTAMP; the server asks MaxResults + 1 to know if more follow.
                Ok(c.query_fragment_summaries(FragmentQuery {
                    stream: s,
                    kind: TimestampKind::Server,
                    start: Timestamp(server - 100),
                    end: Timestamp(server + 4 * HOUR_MS),
                    after: None,
                    limit: limit + 1,
                })
                .await?
                .len())
            }
        })
        .await?;
        emit(
            rows,
            label,
            &t,
            "query_fragment_summaries(server range, limit+1)",
        );
    }
    let n = (calls / 10).max(20);
    for full_rows in [false, true] {
        let t = time(n, |k| {
            let c = &catalog;
            let (s, producer, _, _) = picks[k];
            async move {
                let q = FragmentQuery {
                    stream: s,
                    kind: TimestampKind::Producer,
                    start: Timestamp(producer - 100),
                    end: Timestamp(producer + (ON_DEMAND as i64 + 10) * FRAGMENT_MS),
                    after: None,
                    limit: ON_DEMAND,
                };
                let got = if full_rows {
                    c.query_fragments(q).await?.len()
                } else {
                    c.query_fragment_summaries(q).await?.len()
                };
                if got != ON_DEMAND {
                    return Err(format!("ON_DEMAND window held {got} fragments").into());
                }
                Ok(got)
            }
        })
        .await?;
        let (label, note) = if full_rows {
            (
                "ON_DEMAND 5000: full rows, one query_fragments(5000)",
                "producer range, with sample tables (what the server read before)",
            )
        } else {
            (
                "ON_DEMAND 5000: one query_fragment_summaries(5000)",
                "producer range, index-only",
            )
        };
        emit(rows, label, &t, note);
    }
    let t = time(n, |k| {
        let c = &catalog;
        let (s, producer, _, _) = picks[k];
        async move {
            on_demand_walk(
                c,
                s,
                Timestamp(producer - 100),
                Timestamp(producer + (ON_DEMAND as i64 + 10) * FRAGMENT_MS),
                ON_DEMAND,
            )
            .await
        }
    })
    .await?;
    emit(
        rows,
        "ON_DEMAND 5000: server's pages of 1000",
        &t,
        "as hls::serve::walk_range asks",
    );
    // The plan of one ON_DEMAND window as query_fragment_summaries asks it (stderr): an
    // index-only scan with few heap fetches is what keeps it flat.
    {
        let client = raw_client(url).await?;
        let (s, producer, _, _) = picks[0];
        let plan = client
            .query(
                "EXPLAIN (ANALYZE, BUFFERS) SELECT stream_id, number, producer_ms, server_ms, duration_ms, \
                 size_bytes, sequence, continuity_flags, continuity_counts, summary FROM fragment \
                 WHERE stream_id = $1 AND producer_ms >= $2 AND producer_ms <= $3 \
                 AND (producer_ms, number) > ($4, $5) ORDER BY stream_id, producer_ms, number LIMIT $6",
                &[
                    &s.0,
                    &(producer - 100),
                    &(producer + (ON_DEMAND as i64 + 10) * FRAGMENT_MS),
                    &i64::MIN,
                    &String::new(),
                    &(ON_DEMAND as i64),
                ],
            )
            .await?;
        eprintln!("ON_DEMAND 5000 summaries at {rows} rows:");
        for line in &plan {
            let text: String = line.get(0);
            eprintln!("  {text}");
        }
    }
    picks.clear();

    // Retention: one hour of the oldest data of a stream, as the retention task asks.
    let mut per_call = Vec::new();
    let mut deleted = 0u64;
    let mut spent = Duration::ZERO;
    for t in &retention_targets {
        let cutoff = Timestamp(t.first.server + HOUR_MS);
        let before = catalog
            .query_fragments(FragmentQuery {
                stream: t.id,
                kind: TimestampKind::Server,
                start: Timestamp(i64::MIN),
                end: Timestamp(cutoff.0 - 1),
                after: None,
                limit: 10_000,
            })
            .await?
            .len() as u64;
        let started = Instant::now();
        catalog.delete_fragments_before(t.id, cutoff).await?;
        let took = started.elapsed();
        per_call.push(took.as_secs_f64());
        deleted += before;
        spent += took;
    }
    let t = Timings(per_call);
    emit(
        rows,
        "retention: delete 1 h of one stream",
        &t,
        &format!(
            "{} rows/call, {:.0} rows/s",
            deleted / retention_targets.len() as u64,
            deleted as f64 / spent.as_secs_f64()
        ),
    );
    // The steady state: every minute, each stream loses its oldest minute (30 rows).
    let mut per_call = Vec::new();
    for t in &retention_targets {
        let cutoff = Timestamp(t.first.server + HOUR_MS + 60_000);
        let started = Instant::now();
        catalog.delete_fragments_before(t.id, cutoff).await?;
        per_call.push(started.elapsed().as_secs_f64());
    }
    emit(
        rows,
        "retention: delete 1 min of one stream",
        &Timings(per_call),
        "the retention task's per-minute pass",
    );
    Ok(())
}

/// Reads the TSV lines `measure` (and crates/server/examples/bench_playlist.rs) printed and
/// prints p50/p99 per size and the ratio of the largest size's p99 to the smallest's.
fn report(file: &str) -> Result<(), Error> {
    let text = std::fs::read_to_string(file)?;
    let mut sizes: Vec<u64> = Vec::new();
    let mut queries: Vec<String> = Vec::new();
    let mut cells: BTreeMap<(String, u64), (f64, f64, String)> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 7 {
            continue;
        }
        let (Ok(rows), Ok(p50), Ok(p99)) = (f[0].parse::<u64>(), f[3].parse(), f[4].parse()) else {
            continue;
        };
        if !sizes.contains(&rows) {
            sizes.push(rows);
        }
        if !queries.iter().any(|q| q == f[1]) {
            queries.push(f[1].to_owned());
        }
        cells.insert((f[1].to_owned(), rows), (p50, p99, f[6].to_owned()));
    }
    sizes.sort_unstable();
    let label = |n: u64| {
        if n.is_multiple_of(1_000_000) {
            format!("{}M", n / 1_000_000)
        } else if n.is_multiple_of(1_000) {
            format!("{}k", n / 1_000)
        } else {
            n.to_string()
        }
    };
    let mut header = String::from("| query (ms) |");
    let mut rule = String::from("|---|");
    for &s in &sizes {
        header += &format!(" p50 {0} | p99 {0} |", label(s));
        rule += "---:|---:|";
    }
    if sizes.len() > 1 {
        header += &format!(
            " p99 {}/{} |",
            label(sizes[sizes.len() - 1]),
            label(sizes[0])
        );
        rule += "---:|";
    }
    println!("{header}\n{rule}");
    for q in &queries {
        let mut line = format!("| {q} |");
        for &s in &sizes {
            match cells.get(&(q.clone(), s)) {
                Some((p50, p99, _)) => line += &format!(" {p50:.2} | {p99:.2} |"),
                None => line += " | |",
            }
        }
        if sizes.len() > 1 {
            let first = cells.get(&(q.clone(), sizes[0]));
            let last = cells.get(&(q.clone(), sizes[sizes.len() - 1]));
            match (first, last) {
                (Some(a), Some(b)) if a.1 > 0.0 => line += &format!(" {:.2} |", b.1 / a.1),
                _ => line += " |",
            }
        }
        println!("{line}");
    }
    for q in &queries {
        for &s in &sizes {
            if let Some((_, _, note)) = cells.get(&(q.clone(), s)) {
                if note.contains("rows/s") {
                    println!("{q} at {}: {note}", label(s));
                }
            }
        }
    }
    Ok(())
}
