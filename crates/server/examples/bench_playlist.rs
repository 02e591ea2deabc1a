//! The ON_DEMAND media playlist of 5,000 fragments end to end on a PostgreSQL catalog (issue #9):
//! the server's own handler (`GET /hls/v1/getHLSMediaPlaylist.m3u8`, through the router, without
//! a socket) over a catalog that crates/store/examples/bench_catalog.rs loaded. Each call is a new
//! session (a new token: no playlist cache, no rate limit), so each one walks the catalog and
//! renders the playlist.
//!
//! ```text
//! bench_playlist URL ROWS      # TSV lines as bench_catalog's, for its report
//! ```
//! Env: `OPENKVS_BENCH_CALLS` (default 2000; a tenth of it here).

use std::sync::Arc;
use std::time::Instant;

use http_body_util::BodyExt;
use server::hls::session::{ContainerFormat, DiscontinuityMode, PlaybackMode, Session};
use server::hls::token;
use store::postgres::PgCatalog;
use store::{Catalog, FragmentQuery, Timestamp, TimestampKind};
use tower::ServiceExt;

const WINDOW: u32 = 5_000;
const FRAGMENT_MS: i64 = 2_000;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, rows] = &args[..] else {
        return Err("usage: bench_playlist URL ROWS".into());
    };
    let calls = std::env::var("OPENKVS_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(2000)
        / 10;
    let calls = calls.max(20);
    let pg: Arc<dyn Catalog> = Arc::new(PgCatalog::connect(url).await?);
    // As the server runs it (server::build): the read-through cache in front of the catalog.
    let catalog: Arc<dyn Catalog> = Arc::new(store::CachingCatalog::new(pg));
    let media_dir = tempfile::tempdir()?;
    let media = Arc::new(store::SegmentMediaStore::open(media_dir.path())?);
    let config = server::Config::new("127.0.0.1:0".parse()?, media_dir.path().to_owned());
    let state = server::AppState::new(config, catalog.clone(), media);
    let key = state.config.session_keys[0];
    let app = server::ops::router(state);

    // Streams with more than a window of fragments, with their first and last producer times.
    let mut targets = Vec::new();
    for s in catalog.all_streams().await? {
        let first = catalog
            .query_fragments(FragmentQuery {
                stream: s.id,
                kind: TimestampKind::Producer,
                start: Timestamp(i64::MIN),
                end: Timestamp(i64::MAX),
                after: None,
                limit: 1,
            })
            .await?;
        let last = catalog.latest_fragments(s.id, 1).await?;
        if let (Some(first), Some(last)) = (first.first(), last.first()) {
            let span = last.producer_timestamp.0 - first.producer_timestamp.0;
            if span > (WINDOW as i64 + 1) * FRAGMENT_MS {
                targets.push((s, first.producer_timestamp.0, span));
            }
        }
    }
    if targets.is_empty() {
        return Err("no stream holds a window of 5000 fragments".into());
    }
    let mut seed = rows.parse::<u64>()? ^ 0x5eed;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n.max(1)
    };
    let mut times = Vec::with_capacity(calls);
    let mut bytes = 0usize;
    for k in 0..calls + calls / 10 {
        let (stream, first, span) = &targets[rand(targets.len() as u64) as usize];
        let slots = (span - (WINDOW as i64 + 1) * FRAGMENT_MS) / FRAGMENT_MS;
        let start = first + rand(slots as u64) as i64 * FRAGMENT_MS - 100;
        let now = Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as i64,
        );
        let session = Session {
            stream_id: stream.id,
            stream_creation: stream.creation_time,
            stream_name: stream.name.clone(),
            mode: PlaybackMode::OnDemand,
            selector: TimestampKind::Producer,
            start: Some(Timestamp(start)),
            end: Some(Timestamp(start + (WINDOW as i64 + 10) * FRAGMENT_MS)),
            container: ContainerFormat::FragmentedMp4,
            discontinuity: DiscontinuityMode::default_for(TimestampKind::Producer),
            display_timestamp: false,
            max_fragments: WINDOW,
            created: now,
            expires: Timestamp(now.0 + 300_000),
            origin: Timestamp(start),
            protocol: server::hls::Protocol::Hls,
            display_fragment_number: false,
            wall_offset_ms: 0,
        };
        let uri = format!(
            "/hls/v1/getHLSMediaPlaylist.m3u8?SessionToken={}&TrackNumber=1",
            token::seal(&session, &key)
        );
        let request = http::Request::get(uri).body(axum::body::Body::empty())?;
        let started = Instant::now();
        let response = app.clone().oneshot(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let took = started.elapsed().as_secs_f64();
        if status != http::StatusCode::OK {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body)).into());
        }
        let segments = body.windows(7).filter(|w| w == b"#EXTINF").count();
        if segments != WINDOW as usize {
            return Err(format!("the playlist lists {segments} segments").into());
        }
        if k >= calls / 10 {
            times.push(took);
            bytes = body.len();
        }
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        times[((p / 100.0 * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1]
    };
    println!(
        "{rows}\tON_DEMAND 5000: media playlist end to end\t{}\t{:.3}\t{:.3}\t{:.3}\t{} bytes, handler + CachingCatalog + PgCatalog",
        times.len(),
        pct(50.0) * 1e3,
        pct(99.0) * 1e3,
        pct(100.0) * 1e3,
        bytes
    );
    Ok(())
}
