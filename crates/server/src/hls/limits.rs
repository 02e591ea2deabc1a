//! Request-rate limits of the HLS resources (CONTRACT.md E), with AWS's rates as defaults:
//! GetHLSMasterPlaylist, GetHLSMediaPlaylist and GetMP4InitFragment 5 TPS per session,
//! GetMP4MediaFragment and GetTSFragment 20 TPS per session, GetHLSStreamingSessionURL 25 TPS
//! per stream. Exceeding one answers `ClientLimitExceededException` 400.
//!
//! Each (session, resource) has a token bucket refilled at the rate. Burst: a bucket holds
//! [`HlsLimits::burst_seconds`] (default 2) seconds' worth of requests, so a player that starts
//! by fetching the master playlist, both media playlists, both init fragments and the first
//! several fragments at once is not throttled, while the sustained rate stays AWS's. A rate of 0
//! disables that limit (benchmarks, trusted players).
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
            HlsResource::SessionUrl => "GetHLSStreamingSessionURL",
        }
    }
}

/// Requests per second per session (per stream for the session URL); 0 = unlimited.
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
}

impl Default for HlsLimits {
    /// AWS's quotas (CONTRACT.md E).
    fn default() -> Self {
        HlsLimits {
            master_playlist_tps: 5.0,
            media_playlist_tps: 5.0,
            init_fragment_tps: 5.0,
            media_fragment_tps: 20.0,
            session_url_tps_per_stream: 25.0,
            burst_seconds: 2.0,
        }
    }
}

impl HlsLimits {
    pub fn rate(&self, resource: HlsResource) -> f64 {
        match resource {
            HlsResource::MasterPlaylist => self.master_playlist_tps,
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

    /// Takes one request from the bucket of (`session_key`, `resource`) at `now`; refuses with
    /// `ClientLimitExceededException` when it is empty. `session_key` is the session id
    /// ([`super::token::session_id`]), or for [`HlsResource::SessionUrl`] the stream id's bytes.
    pub fn check(
        &self,
        session_key: &[u8],
        resource: HlsResource,
        now: Timestamp,
    ) -> Result<(), ApiError> {
        let rate = self.limits.rate(resource);
        let limited = rate.is_finite() && rate > 0.0;
        if !limited {
            return Ok(());
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
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
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

    #[test]
    fn burst_then_sustained_rate() {
        let l = RateLimiter::new(HlsLimits::default());
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
        let l = RateLimiter::new(HlsLimits::default());
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
            ..HlsLimits::default()
        });
        for _ in 0..10_000 {
            l.check(b"s", HlsResource::MediaFragment, t(0)).unwrap();
        }
        assert!(l.is_empty());
    }

    #[test]
    fn refilled_buckets_are_evicted() {
        let l = RateLimiter::new(HlsLimits::default());
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
        let l = RateLimiter::with_capacity(HlsLimits::default(), 100);
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
        let l = RateLimiter::new(HlsLimits::default());
        for _ in 0..10 {
            l.check(b"s", HlsResource::InitFragment, t(10_000)).unwrap();
        }
        assert!(l.check(b"s", HlsResource::InitFragment, t(5_000)).is_err());
        assert!(l.check(b"s", HlsResource::InitFragment, t(10_000)).is_err());
    }
}
