//! Optional request-rate limits of the HLS resources (docs/choices.md#hls-rate-limits).
//!
//! Off by default: a self-hosted archive must never hand a fast reader (`ffmpeg -i URL -c copy`,
//! a downloader, a player catching up) a recording with holes, and AWS's per-session quotas did
//! exactly that: ffmpeg skips a segment answered with an error and exits 0. An operator who wants
//! AWS's quotas turns them on with [`HlsLimits::aws`] (`[hls_rate_limits] mode = "aws"`):
//! GetHLSMasterPlaylist, GetHLSMediaPlaylist and GetMP4InitFragment 5 TPS per session,
//! GetMP4MediaFragment and GetTSFragment 20 TPS per session, GetHLSStreamingSessionURL 25 TPS per
//! stream. Even then a request over the rate is first *delayed* until its turn, up to
//! [`HlsLimits::max_delay_seconds`]; only a request that would wait longer is refused with
//! `ClientLimitExceededException` 400. A sequential reader is thus paced, never truncated.
//!
//! Each (session, resource) has a token bucket refilled at the rate. Burst: a bucket holds
//! [`HlsLimits::burst_seconds`] seconds' worth of requests, so a player that starts by fetching
//! the master playlist, both media playlists, both init fragments and the first several fragments
//! at once is not slowed down. A delayed request reserves its token (the bucket goes below zero),
//! so waiting requests are bounded too: at most `rate × max_delay` per bucket. A rate of 0 disables
//! that limit.
//!
//! Memory is bounded: a bucket that has refilled completely carries no information (a fresh one
//! would behave the same), so it is dropped; a sweep runs at most once a second and whenever the
//! table reaches [`MAX_BUCKETS`]. If a flood of distinct live sessions still fills the table, the
//! least recently used buckets go (those sessions briefly get a fresh burst): the limiter fails
//! open rather than refusing legitimate players or growing without bound.

use std::collections::HashMap;
use std::sync::Mutex;

use store::Timestamp;

use crate::error::ApiError;

/// Most buckets kept at once (~100 bytes each).
pub const MAX_BUCKETS: usize = 100_000;
/// Most bytes of a limiter key that are kept (a session id is 12, a stream id 8).
const KEY_BYTES: usize = 16;

/// A rate-limited HLS API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HlsResource {
    MasterPlaylist,
    MediaPlaylist,
    InitFragment,
    MediaFragment,
    TsFragment,
    /// GetDASHManifest (the MPD of a DASH session): AWS's 5 TPS, as the master playlist.
    DashManifest,
    /// GetHLSStreamingSessionURL; keyed by stream, not session.
    SessionUrl,
}

impl HlsResource {
    /// The AWS API name (for messages and metrics).
    pub fn api_name(self) -> &'static str {
        match self {
            HlsResource::MasterPlaylist => "GetHLSMasterPlaylist",
            HlsResource::MediaPlaylist => "GetHLSMediaPlaylist",
            HlsResource::InitFragment => "GetMP4InitFragment",
            HlsResource::MediaFragment => "GetMP4MediaFragment",
            HlsResource::TsFragment => "GetTSFragment",
            HlsResource::DashManifest => "GetDASHManifest",
            HlsResource::SessionUrl => "GetHLSStreamingSessionURL",
        }
    }
}

/// Requests per second per session (per stream for the session URL); 0 = unlimited.
/// [`Default`] is no limit at all; [`HlsLimits::aws`] is AWS's quotas.
#[derive(Clone, Debug, PartialEq)]
pub struct HlsLimits {
    pub master_playlist_tps: f64,
    pub media_playlist_tps: f64,
    pub init_fragment_tps: f64,
    /// GetMP4MediaFragment and GetTSFragment.
    pub media_fragment_tps: f64,
    pub session_url_tps_per_stream: f64,
    /// Bucket size in seconds of the rate (at least one request).
    pub burst_seconds: f64,
    /// How long a request over the rate may wait for its turn before it is refused.
    pub max_delay_seconds: f64,
}

impl Default for HlsLimits {
    /// No limit (docs/choices.md#hls-rate-limits).
    fn default() -> Self {
        HlsLimits {
            master_playlist_tps: 0.0,
            media_playlist_tps: 0.0,
            init_fragment_tps: 0.0,
            media_fragment_tps: 0.0,
            session_url_tps_per_stream: 0.0,
            burst_seconds: 2.0,
            max_delay_seconds: 2.0,
        }
    }
}

impl HlsLimits {
    /// AWS's quotas (docs/wire.md#hls-quotas).
    pub fn aws() -> Self {
        HlsLimits {
            master_playlist_tps: 5.0,
            media_playlist_tps: 5.0,
            init_fragment_tps: 5.0,
            media_fragment_tps: 20.0,
            session_url_tps_per_stream: 25.0,
            ..HlsLimits::default()
        }
    }

    pub fn rate(&self, resource: HlsResource) -> f64 {
        match resource {
            HlsResource::MasterPlaylist | HlsResource::DashManifest => self.master_playlist_tps,
            HlsResource::MediaPlaylist => self.media_playlist_tps,
            HlsResource::InitFragment => self.init_fragment_tps,
            HlsResource::MediaFragment | HlsResource::TsFragment => self.media_fragment_tps,
            HlsResource::SessionUrl => self.session_url_tps_per_stream,
        }
    }

    fn capacity(&self, rate: f64) -> f64 {
        (rate * self.burst_seconds).max(1.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct BucketKey {
    resource: HlsResource,
    len: u8,
    key: [u8; KEY_BYTES],
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: i64,
}

struct Table {
    buckets: HashMap<BucketKey, Bucket>,
    last_sweep: i64,
}

/// The in-memory token buckets of every live session.
pub struct RateLimiter {
    limits: HlsLimits,
    table: Mutex<Table>,
    max_buckets: usize,
}

impl RateLimiter {
    pub fn new(limits: HlsLimits) -> Self {
        Self::with_capacity(limits, MAX_BUCKETS)
    }

    fn with_capacity(limits: HlsLimits, max_buckets: usize) -> Self {
        RateLimiter {
            limits,
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                last_sweep: i64::MIN,
            }),
            max_buckets,
        }
    }

    pub fn limits(&self) -> &HlsLimits {
        &self.limits
    }

    /// Admits one request of (`session_key`, `resource`): waits for its turn when the bucket is
    /// empty, refuses it when the wait would exceed the limit's maximum delay.
    pub async fn admit(
        &self,
        session_key: &[u8],
        resource: HlsResource,
        now: Timestamp,
    ) -> Result<(), ApiError> {
        let wait = self.check(session_key, resource, now)?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Takes one request from the bucket of (`session_key`, `resource`) at `now` and says how
    /// long it must wait for its turn (zero when a token is there); refuses with
    /// `ClientLimitExceededException` when that wait would exceed the maximum delay.
    /// `session_key` is the session id ([`super::token::session_id`]), or for
    /// [`HlsResource::SessionUrl`] the stream id's bytes.
    pub fn check(
        &self,
        session_key: &[u8],
        resource: HlsResource,
        now: Timestamp,
    ) -> Result<std::time::Duration, ApiError> {
        let rate = self.limits.rate(resource);
        let limited = rate.is_finite() && rate > 0.0;
        if !limited {
            return Ok(std::time::Duration::ZERO);
        }
        let capacity = self.limits.capacity(rate);
        let mut key = [0u8; KEY_BYTES];
        let len = session_key.len().min(KEY_BYTES);
        key[..len].copy_from_slice(&session_key[..len]);
        let key = BucketKey {
            resource,
            len: len as u8,
            key,
        };
        let now = now.millis();
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if now.saturating_sub(table.last_sweep) >= 1000 || table.buckets.len() >= self.max_buckets {
            self.sweep(&mut table, now);
        }
        let bucket = table.buckets.entry(key).or_insert(Bucket {
            tokens: capacity,
            last: now,
        });
        let elapsed = now.saturating_sub(bucket.last).max(0) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.last = bucket.last.max(now);
        let wait_seconds = ((1.0 - bucket.tokens) / rate).max(0.0);
        if wait_seconds <= self.limits.max_delay_seconds.max(0.0) {
            bucket.tokens -= 1.0;
            Ok(std::time::Duration::from_secs_f64(wait_seconds))
        } else {
            let whom = match resource {
                HlsResource::SessionUrl => "this stream",
                _ => "this streaming session",
            };
            Err(ApiError::ClientLimitExceeded(format!(
                "Limit exceeded on number of requests for {} API for {whom}.",
                resource.api_name()
            )))
        }
    }

    /// Drops buckets that have refilled (indistinguishable from new ones); if the table is still
    /// at its bound, the least recently used half goes.
    fn sweep(&self, table: &mut Table, now: i64) {
        table.last_sweep = now;
        let limits = &self.limits;
        table.buckets.retain(|k, b| {
            let rate = limits.rate(k.resource);
            let capacity = limits.capacity(rate);
            let elapsed = now.saturating_sub(b.last).max(0) as f64 / 1000.0;
            b.tokens + elapsed * rate < capacity
        });
        if table.buckets.len() >= self.max_buckets {
            let mut lasts: Vec<i64> = table.buckets.values().map(|b| b.last).collect();
            let mid = lasts.len() / 2;
            let (_, cutoff, _) = lasts.select_nth_unstable(mid);
            let cutoff = *cutoff;
            table.buckets.retain(|_, b| b.last > cutoff);
            tracing::warn!(
                kept = table.buckets.len(),
                "HLS rate-limit table full: dropped the least recently used sessions' buckets"
            );
        }
    }

    /// Buckets held now (tests, metrics).
    pub fn len(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .buckets
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    /// AWS's rates with no waiting: the bucket arithmetic alone.
    fn refusing() -> HlsLimits {
        HlsLimits {
            max_delay_seconds: 0.0,
            ..HlsLimits::aws()
        }
    }

    fn zero(d: Result<std::time::Duration, ApiError>) -> bool {
        matches!(d, Ok(d) if d.is_zero())
    }

    #[test]
    fn off_by_default() {
        let l = RateLimiter::new(HlsLimits::default());
        for resource in [
            HlsResource::MasterPlaylist,
            HlsResource::MediaPlaylist,
            HlsResource::InitFragment,
            HlsResource::MediaFragment,
            HlsResource::TsFragment,
            HlsResource::DashManifest,
            HlsResource::SessionUrl,
        ] {
            for _ in 0..10_000 {
                assert!(zero(l.check(b"s", resource, t(0))));
            }
        }
        assert!(l.is_empty());
    }

    #[test]
    fn over_the_rate_waits_for_its_turn_before_it_is_refused() {
        let l = RateLimiter::new(HlsLimits::aws());
        // 20 TPS, 2 s burst: 40 at once go straight through ...
        for _ in 0..40 {
            assert!(zero(l.check(b"s", HlsResource::MediaFragment, t(0))));
        }
        // ... the next ones wait 50 ms more each, up to the 2-s maximum delay ...
        for i in 1..=40u64 {
            let wait = l.check(b"s", HlsResource::MediaFragment, t(0)).unwrap();
            assert_eq!((wait.as_secs_f64() * 1000.0).round() as u64, i * 50, "{i}");
        }
        // ... and only then is one refused.
        let e = l.check(b"s", HlsResource::MediaFragment, t(0)).unwrap_err();
        assert_eq!(e.aws_error_type(), "ClientLimitExceededException");
        // A sequential reader one request every 50 ms is never refused, only paced.
        for i in 1..1000 {
            l.check(b"s", HlsResource::MediaFragment, t(2_000 + i * 50))
                .unwrap();
        }
    }

    #[test]
    fn burst_then_sustained_rate() {
        let l = RateLimiter::new(refusing());
        // 5 TPS with a 2-second burst: 10 at once, the 11th is refused.
        for i in 0..10 {
            l.check(b"s1", HlsResource::MasterPlaylist, t(0))
                .unwrap_or_else(|e| panic!("{i}: {e}"));
        }
        let e = l
            .check(b"s1", HlsResource::MasterPlaylist, t(0))
            .unwrap_err();
        assert_eq!(e.aws_error_type(), "ClientLimitExceededException");
        assert_eq!(e.http_status(), 400);
        assert!(e.message().contains("GetHLSMasterPlaylist"), "{e}");
        // Another resource and another session have their own buckets.
        l.check(b"s1", HlsResource::MediaFragment, t(0)).unwrap();
        l.check(b"s2", HlsResource::MasterPlaylist, t(0)).unwrap();
        // 200 ms later one more request is allowed (5 TPS), not two.
        l.check(b"s1", HlsResource::MasterPlaylist, t(200)).unwrap();
        assert!(l.check(b"s1", HlsResource::MasterPlaylist, t(200)).is_err());
        // Sustained: one every 200 ms for a minute is fine.
        for i in 2..300 {
            l.check(b"s1", HlsResource::MasterPlaylist, t(i * 200))
                .unwrap_or_else(|e| panic!("{i}: {e}"));
        }
    }

    #[test]
    fn fragment_rate_is_twenty() {
        let l = RateLimiter::new(refusing());
        let ok = (0..100)
            .filter(|_| l.check(b"s", HlsResource::MediaFragment, t(0)).is_ok())
            .count();
        assert_eq!(ok, 40);
        let ok = (0..100)
            .filter(|_| l.check(b"s", HlsResource::TsFragment, t(0)).is_ok())
            .count();
        assert_eq!(ok, 40);
    }

    #[test]
    fn zero_means_unlimited() {
        let l = RateLimiter::new(HlsLimits {
            media_fragment_tps: 0.0,
            ..refusing()
        });
        for _ in 0..10_000 {
            l.check(b"s", HlsResource::MediaFragment, t(0)).unwrap();
        }
        assert!(l.is_empty());
    }

    #[test]
    fn refilled_buckets_are_evicted() {
        let l = RateLimiter::new(HlsLimits::aws());
        for i in 0u32..1000 {
            l.check(&i.to_be_bytes(), HlsResource::MediaPlaylist, t(0))
                .unwrap();
        }
        assert_eq!(l.len(), 1000);
        // After the refill time (2 s) every bucket is full again and the next sweep drops them.
        l.check(b"x", HlsResource::MediaPlaylist, t(2_500)).unwrap();
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn table_is_bounded() {
        let l = RateLimiter::with_capacity(HlsLimits::aws(), 100);
        for i in 0u32..10_000 {
            l.check(
                &i.to_be_bytes(),
                HlsResource::MasterPlaylist,
                t(i as i64 / 100),
            )
            .unwrap();
            assert!(l.len() <= 100, "{i}: {}", l.len());
        }
    }

    #[test]
    fn clock_going_backwards_does_not_mint_tokens() {
        let l = RateLimiter::new(refusing());
        for _ in 0..10 {
            l.check(b"s", HlsResource::InitFragment, t(10_000)).unwrap();
        }
        assert!(l.check(b"s", HlsResource::InitFragment, t(5_000)).is_err());
        assert!(l.check(b"s", HlsResource::InitFragment, t(10_000)).is_err());
    }
}
