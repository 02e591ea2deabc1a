//! Low-latency HLS (RFC 8216bis; docs/architecture.md#low-latency-hls): the fragments a node is
//! receiving, kept in memory frame by frame so LIVE playlists can list their parts before they are
//! stored, and a per-stream signal that wakes blocked playlist reloads and part requests the
//! moment a part, a fragment or a commit lands (no timer loop).
//!
//! Ingest feeds [`LiveParts`] (only when the server runs with `--ll-hls`): [`LiveParts::begin`] at
//! each Cluster, [`LiveParts::frame`] per frame, [`LiveParts::complete`] at its end,
//! [`LiveParts::committed`] once the catalog holds it, [`LiveParts::failed`] if it never will.
//! Where a track is cut is `media::parts::cut`, one pure rule for the parts of a fragment in
//! flight (here) and of a stored one (`serve`), so both are the same bytes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use media::parts::{self, Part};
use media::timeline::{self, DecodeTimes, StoredSample, TrackClock, TrackTiming};
use media::TrackNumber;
use store::{CodecConfigId, FragmentNumber, FragmentTimes, StreamId, Timestamp};
use tokio::sync::watch;

/// `--ll-hls`: LL-HLS for LIVE fMP4 sessions (docs/architecture.md#low-latency-hls).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LowLatencyConfig {
    /// `PART-TARGET`: parts last at most this long.
    pub part_target: Duration,
}

impl Default for LowLatencyConfig {
    /// 300 ms: 9 frames at 30 fps, 7 at 25; `PART-HOLD-BACK` (three of them) is then 0.9 s.
    fn default() -> Self {
        LowLatencyConfig {
            part_target: Duration::from_millis(300),
        }
    }
}

impl LowLatencyConfig {
    /// The part target in a track's ticks (whole ms are whole ticks at 90 kHz and at every AAC rate
    /// that is a multiple of 1 kHz; others round down, so parts stay within the target).
    pub fn target_ticks(&self, timescale: u32) -> u64 {
        (self.part_target.as_nanos() * u128::from(timescale) / 1_000_000_000) as u64
    }

    pub fn playlist(&self) -> super::playlist::LowLatency {
        super::playlist::LowLatency {
            part_target_s: self.part_target.as_secs_f64(),
        }
    }
}

/// The parts of one track of a fragment: the decode-order timing of its samples (from `start_ns`,
/// decode times at presentation times as fMP4 segments have them) cut by [`parts::cut`].
pub fn cut_track(
    start_ns: u64,
    samples: &[StoredSample],
    clock: TrackClock,
    config: &LowLatencyConfig,
    complete: bool,
) -> Option<(TrackTiming, Vec<Part>)> {
    let timing =
        timeline::track_timing(start_ns, samples, clock, DecodeTimes::AtPresentation).ok()?;
    let cut = parts::cut(&timing, config.target_ticks(timing.timescale), complete);
    Some((timing, cut))
}

/// The timing of one part: its slice of the whole track's timing.
pub fn part_timing(whole: &TrackTiming, part: &Part) -> TrackTiming {
    let samples = whole.samples[part.samples.clone()].to_vec();
    TrackTiming {
        timescale: whole.timescale,
        base_decode_time: samples.first().map_or(0, |s| s.dts),
        samples,
        duration: part.duration,
    }
}

/// Every stream this node is receiving, for LL-HLS.
#[derive(Default)]
pub struct LiveParts {
    streams: Mutex<HashMap<StreamId, Arc<StreamLive>>>,
}

/// One stream's fragments in flight and its change signal.
pub struct StreamLive {
    receiving: Mutex<Receiving>,
    /// Bumped whenever what the stream's LL playlists list changes.
    version: watch::Sender<u64>,
}

#[derive(Default)]
struct Receiving {
    /// Received but not yet in the catalog, oldest first; the last may still be arriving.
    fragments: VecDeque<InFlight>,
    /// A fragment whose parts were listed failed: the next one begins a discontinuity.
    lost_parts: bool,
}

struct InFlight {
    number: FragmentNumber,
    producer_timestamp: Timestamp,
    server_timestamp: Timestamp,
    /// Every frame is here (its Cluster ended and it was handed to the archive).
    complete: bool,
    /// Parts of a fragment before it were listed and that fragment failed.
    discontinuous: bool,
    tracks: Vec<InFlightTrack>,
}

struct InFlightTrack {
    track: TrackNumber,
    codec_config: CodecConfigId,
    /// `None`: a track whose timing cannot be known (undecodable audio): no parts.
    clock: Option<TrackClock>,
    samples: Vec<StoredSample>,
    data: Vec<Bytes>,
    /// The final parts so far.
    parts: Vec<Part>,
}

/// A track a fragment has (from its Tracks element).
#[derive(Clone, Copy, Debug)]
pub struct TrackPlan {
    pub track: TrackNumber,
    pub codec_config: CodecConfigId,
    pub clock: Option<TrackClock>,
}

/// What a playlist lists of a fragment in flight, for one track.
#[derive(Clone, Debug)]
pub struct PendingFragment {
    pub number: FragmentNumber,
    pub producer_timestamp: Timestamp,
    pub server_timestamp: Timestamp,
    pub codec_config: CodecConfigId,
    /// (track, codec config id) of every track of the fragment, as the continuity rule compares.
    pub configs: Vec<(u64, i64)>,
    pub parts: Vec<Part>,
    pub timescale: u32,
    pub complete: bool,
    pub discontinuous: bool,
}

impl FragmentTimes for PendingFragment {
    fn producer_timestamp(&self) -> Timestamp {
        self.producer_timestamp
    }
    fn server_timestamp(&self) -> Timestamp {
        self.server_timestamp
    }
}

/// One part of a fragment in flight, ready to send.
pub struct PartSource {
    pub producer_timestamp: Timestamp,
    pub server_timestamp: Timestamp,
    pub codec_config: CodecConfigId,
    /// Every sample received so far (the part's timing is final within them).
    pub samples: Vec<StoredSample>,
    pub part: Part,
    /// The part's sample bytes, in decode order.
    pub data: Vec<Bytes>,
}

impl FragmentTimes for PartSource {
    fn producer_timestamp(&self) -> Timestamp {
        self.producer_timestamp
    }
    fn server_timestamp(&self) -> Timestamp {
        self.server_timestamp
    }
}

/// Where a part asked for stands.
pub enum PartLookup {
    Ready(Box<PartSource>),
    /// The fragment is arriving and the part is not final yet.
    NotYet,
    /// This node is not receiving that fragment (stored, failed, or on another node).
    Unknown,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LiveParts {
    /// The stream's entry, created on first use (a playlist can wait on a stream before its
    /// producer connects to this node).
    pub fn stream(&self, stream: StreamId) -> Arc<StreamLive> {
        lock(&self.streams)
            .entry(stream)
            .or_insert_with(|| {
                Arc::new(StreamLive {
                    receiving: Mutex::new(Receiving::default()),
                    version: watch::channel(0).0,
                })
            })
            .clone()
    }

    fn existing(&self, stream: StreamId) -> Option<Arc<StreamLive>> {
        lock(&self.streams).get(&stream).cloned()
    }

    /// A Cluster began: fragment `number` is arriving. Returns whether it begins a discontinuity
    /// (parts of a failed fragment before it were listed): the ingest stores it so.
    pub fn begin(
        &self,
        stream: StreamId,
        number: FragmentNumber,
        times: (Timestamp, Timestamp),
        tracks: &[TrackPlan],
    ) -> bool {
        let live = self.stream(stream);
        let mut r = lock(&live.receiving);
        let discontinuous = std::mem::take(&mut r.lost_parts);
        r.fragments.push_back(InFlight {
            number,
            producer_timestamp: times.0,
            server_timestamp: times.1,
            complete: false,
            discontinuous,
            tracks: tracks
                .iter()
                .map(|t| InFlightTrack {
                    track: t.track,
                    codec_config: t.codec_config,
                    clock: t.clock,
                    samples: Vec::new(),
                    data: Vec::new(),
                    parts: Vec::new(),
                })
                .collect(),
        });
        discontinuous
    }

    /// A frame of fragment `number` arrived (already accepted by the fragment builder).
    pub fn frame(
        &self,
        stream: StreamId,
        number: FragmentNumber,
        track: TrackNumber,
        sample: StoredSample,
        data: Bytes,
        config: &LowLatencyConfig,
    ) {
        let Some(live) = self.existing(stream) else {
            return;
        };
        let grew = {
            let mut r = lock(&live.receiving);
            let Some(f) = r.fragments.iter_mut().rev().find(|f| f.number == number) else {
                return;
            };
            let start_ns = start_ns(f.producer_timestamp);
            let Some(t) = f.tracks.iter_mut().find(|t| t.track == track) else {
                return;
            };
            t.samples.push(sample);
            t.data.push(data);
            t.recut(start_ns, config, false)
        };
        if grew {
            live.bump();
        }
    }

    /// Fragment `number`'s Cluster ended and it went to the archive: its last parts are final.
    pub fn complete(&self, stream: StreamId, number: FragmentNumber, config: &LowLatencyConfig) {
        let Some(live) = self.existing(stream) else {
            return;
        };
        {
            let mut r = lock(&live.receiving);
            let Some(f) = r.fragments.iter_mut().find(|f| f.number == number) else {
                return;
            };
            f.complete = true;
            let start_ns = start_ns(f.producer_timestamp);
            for t in &mut f.tracks {
                t.recut(start_ns, config, true);
            }
        }
        live.bump();
    }

    /// Fragment `number` is in the catalog: playlists list it from there now.
    pub fn committed(&self, stream: StreamId, number: FragmentNumber) {
        let Some(live) = self.existing(stream) else {
            return;
        };
        lock(&live.receiving)
            .fragments
            .retain(|f| f.number > number);
        live.bump();
    }

    /// Fragment `number` will never be stored. If parts of it were listed, the stream's next
    /// fragment begins a discontinuity, so a player that played them resets instead of mixing.
    pub fn failed(&self, stream: StreamId, number: FragmentNumber) {
        let Some(live) = self.existing(stream) else {
            return;
        };
        {
            let mut r = lock(&live.receiving);
            let Some(at) = r.fragments.iter().position(|f| f.number == number) else {
                return;
            };
            let listed = r.fragments[at].tracks.iter().any(|t| !t.parts.is_empty());
            r.fragments.remove(at);
            if listed {
                r.lost_parts = true;
            }
        }
        live.bump();
    }

    /// The fragments in flight after `after` (the newest stored one), as track `track`'s playlist
    /// lists them: oldest first, stopping at one without the track.
    pub fn pending(
        &self,
        stream: StreamId,
        after: Option<FragmentNumber>,
        track: TrackNumber,
    ) -> Vec<PendingFragment> {
        let Some(live) = self.existing(stream) else {
            return Vec::new();
        };
        let r = lock(&live.receiving);
        let mut out = Vec::new();
        for f in r
            .fragments
            .iter()
            .filter(|f| after.is_none_or(|a| f.number > a))
        {
            let Some(t) = f.tracks.iter().find(|t| t.track == track) else {
                break;
            };
            out.push(PendingFragment {
                number: f.number,
                producer_timestamp: f.producer_timestamp,
                server_timestamp: f.server_timestamp,
                codec_config: t.codec_config,
                configs: f
                    .tracks
                    .iter()
                    .map(|t| (t.track.0, t.codec_config.0))
                    .collect(),
                parts: t.parts.clone(),
                timescale: match t.clock {
                    Some(TrackClock::Audio { sample_rate, .. }) => sample_rate,
                    _ => timeline::VIDEO_TIMESCALE,
                },
                complete: f.complete,
                discontinuous: f.discontinuous,
            });
        }
        out
    }

    /// Part `index` of track `track` of fragment `number`, if this node is receiving it.
    pub fn part(
        &self,
        stream: StreamId,
        number: FragmentNumber,
        track: TrackNumber,
        index: usize,
    ) -> PartLookup {
        let Some(live) = self.existing(stream) else {
            return PartLookup::Unknown;
        };
        let r = lock(&live.receiving);
        let Some(f) = r.fragments.iter().find(|f| f.number == number) else {
            return PartLookup::Unknown;
        };
        let Some(t) = f.tracks.iter().find(|t| t.track == track) else {
            return PartLookup::Unknown;
        };
        match t.parts.get(index) {
            Some(part) => PartLookup::Ready(Box::new(PartSource {
                producer_timestamp: f.producer_timestamp,
                server_timestamp: f.server_timestamp,
                codec_config: t.codec_config,
                samples: t.samples.clone(),
                part: part.clone(),
                data: t.data[part.samples.clone()].to_vec(),
            })),
            None if f.complete => PartLookup::Unknown,
            None => PartLookup::NotYet,
        }
    }

    /// A receiver that sees every change of `stream`'s parts, fragments and commits on this node.
    pub fn watch(&self, stream: StreamId) -> watch::Receiver<u64> {
        self.stream(stream).version.subscribe()
    }

    /// Forgets the stream if nobody receives or waits on it (called when a PutMedia connection or a
    /// blocking reload ends), so entries made by viewers of streams this node does not ingest go.
    pub fn prune(&self, stream: StreamId) {
        let mut streams = lock(&self.streams);
        if let Some(live) = streams.get(&stream) {
            let receiving = lock(&live.receiving);
            let idle = receiving.fragments.is_empty()
                && !receiving.lost_parts
                && live.version.receiver_count() == 0;
            drop(receiving);
            if idle {
                streams.remove(&stream);
            }
        }
    }
}

impl StreamLive {
    fn bump(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }
}

impl InFlightTrack {
    /// Recuts the track after a new frame (or at its end); true if a part was added.
    fn recut(&mut self, start_ns: u64, config: &LowLatencyConfig, complete: bool) -> bool {
        let Some(clock) = self.clock else {
            return false;
        };
        let Some((_, cut)) = cut_track(start_ns, &self.samples, clock, config, complete) else {
            return false;
        };
        // Parts only ever grow: what was listed stays (media::parts guarantees the prefix).
        if cut.len() > self.parts.len() && cut[..self.parts.len()] == self.parts[..] {
            self.parts = cut;
            true
        } else {
            false
        }
    }
}

/// The fragment's start for cutting: its producer timestamp in ns. Where parts are cut does not
/// depend on the start (whole ms are whole ticks; media::parts), so any session's cut is this one.
fn start_ns(producer_timestamp: Timestamp) -> u64 {
    u64::try_from(producer_timestamp.0)
        .unwrap_or(0)
        .saturating_mul(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Vec<TrackPlan> {
        vec![TrackPlan {
            track: TrackNumber(1),
            codec_config: CodecConfigId(1),
            clock: Some(TrackClock::Video),
        }]
    }

    fn frame(i: i64) -> StoredSample {
        StoredSample {
            pts_offset_ns: i * 33_333_333,
            duration_ns: None,
            size: 4,
            keyframe: i == 0,
        }
    }

    #[test]
    fn parts_appear_as_frames_arrive_and_go_at_commit() {
        let live = LiveParts::default();
        let config = LowLatencyConfig::default();
        let (s, n) = (StreamId(1), FragmentNumber(9));
        let mut seen = live.watch(s);
        assert!(!live.begin(s, n, (Timestamp(1_000), Timestamp(2_000)), &plan()));
        for i in 0..12 {
            live.frame(
                s,
                n,
                TrackNumber(1),
                frame(i),
                Bytes::from_static(b"abcd"),
                &config,
            );
        }
        // 9 frames fill the first 300 ms part; it is final once cuts past it are known.
        let pending = live.pending(s, None, TrackNumber(1));
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].parts.len(), 1);
        assert_eq!(pending[0].parts[0].samples, 0..9);
        assert!(seen.has_changed().unwrap());
        seen.mark_unchanged();
        assert!(matches!(
            live.part(s, n, TrackNumber(1), 0),
            PartLookup::Ready(_)
        ));
        assert!(matches!(
            live.part(s, n, TrackNumber(1), 1),
            PartLookup::NotYet
        ));
        live.complete(s, n, &config);
        assert_eq!(live.pending(s, None, TrackNumber(1))[0].parts.len(), 2);
        assert!(matches!(
            live.part(s, n, TrackNumber(1), 2),
            PartLookup::Unknown
        ));
        live.committed(s, n);
        assert!(live.pending(s, None, TrackNumber(1)).is_empty());
        assert!(seen.has_changed().unwrap());
    }

    #[test]
    fn a_failed_fragment_with_listed_parts_makes_the_next_discontinuous() {
        let live = LiveParts::default();
        let config = LowLatencyConfig::default();
        let s = StreamId(1);
        live.begin(s, FragmentNumber(1), (Timestamp(0), Timestamp(0)), &plan());
        live.failed(s, FragmentNumber(1));
        assert!(!live.begin(s, FragmentNumber(2), (Timestamp(0), Timestamp(0)), &plan()));
        for i in 0..12 {
            live.frame(
                s,
                FragmentNumber(2),
                TrackNumber(1),
                frame(i),
                Bytes::new(),
                &config,
            );
        }
        live.failed(s, FragmentNumber(2));
        assert!(live.begin(s, FragmentNumber(3), (Timestamp(0), Timestamp(0)), &plan()));
        assert!(live.pending(s, None, TrackNumber(1))[0].discontinuous);
    }
}
