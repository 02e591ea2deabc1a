//! Sample timing of one track of one stored fragment: what the fMP4 writer (`tfdt`, `trun`),
//! the MPEG-TS muxer (PTS/DTS) and the playlist (`EXTINF`) need.
//!
//! Matroska stores **presentation** timestamps, in decode order ([`StoredSample`]). MP4 wants
//! decode times plus composition offsets. Rules:
//!
//! - Times are absolute: `fragment_start_ns + pts_offset_ns`, ns since the caller's origin
//!   (epoch ns, ~1.8e18). Each absolute time is converted to the timescale once, with integer
//!   rounding in `u128` ([`ns_to_timescale`]); durations are differences of converted absolute
//!   times, never sums of rounded deltas, so fragments cut from one stream line up exactly.
//! - Video: DTS come from the sorted PTS shifted back by the smallest delay that keeps every
//!   DTS ≤ its PTS: `dts[i] = sorted_pts[i] − D`, `D = max(sorted_pts[i] − pts[i]) ≥ 0`. DTS
//!   are then non-decreasing and every composition offset is ≥ 0, so `trun` version 0 works
//!   and players that mishandle negative offsets (version 1) are not involved. The price is a
//!   decode timeline D later than a signed-offset one would be, and no edit list compensates:
//!   presentation times stay exactly the stored ones, which is what HLS timestamps need.
//! - Audio (AAC): every frame lasts `frame_length` samples at the sample-rate timescale;
//!   only the first frame's stored time is used (Matroska's ms timecodes jitter, AAC doesn't).

use thiserror::Error;

/// Nanoseconds per second.
const NS_PER_SECOND: u128 = 1_000_000_000;

/// One sample as stored at ingest, in decode (= stream) order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredSample {
    /// Presentation time relative to the fragment start, in ns (Matroska block timecode +
    /// cluster timecode − fragment start; may be negative).
    pub pts_offset_ns: i64,
    /// `BlockDuration` in ns, when the block had one.
    pub duration_ns: Option<u64>,
    /// Bytes of sample data.
    pub size: u32,
    /// Key frame (Matroska key flag).
    pub keyframe: bool,
}

/// Timing of one track of one fragment, in `timescale` units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackTiming {
    /// Ticks per second (90 000 for video, the sample rate for audio).
    pub timescale: u32,
    /// Decode time of the first sample (`tfdt` baseMediaDecodeTime).
    pub base_decode_time: u64,
    /// The samples in decode order.
    pub samples: Vec<TimedSample>,
    /// Sum of the sample durations: the fragment's length, which `EXTINF` must equal.
    pub duration: u64,
}

/// One sample's timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedSample {
    /// Decode duration (next sample's DTS − this DTS).
    pub duration: u32,
    /// PTS − DTS (≥ 0 by construction).
    pub composition_offset: i32,
    /// Bytes of sample data.
    pub size: u32,
    /// Sync sample (key frame).
    pub sync: bool,
    /// Absolute presentation time.
    pub pts: u64,
    /// Absolute decode time.
    pub dts: u64,
}

impl TrackTiming {
    /// Bytes of sample data in the fragment.
    pub fn data_len(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.size)).sum()
    }
}

/// Why no timing can be given.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TimelineError {
    /// The fragment has no sample of this track.
    #[error("no samples")]
    NoSamples,
    /// More samples than a `trun` can count.
    #[error("{0} samples in one fragment")]
    TooManySamples(usize),
    /// A timescale or frame length of zero.
    #[error("{what} is zero")]
    Zero {
        /// `"timescale"` or `"frame_length"`.
        what: &'static str,
    },
    /// A time before the origin or beyond what the timescale can count in 64 bits.
    #[error("sample {index}: time out of range")]
    TimeOutOfRange {
        /// Decode-order index of the sample.
        index: usize,
    },
    /// A duration or composition offset does not fit the `trun` field.
    #[error("sample {index}: {what} out of range")]
    FieldOutOfRange {
        /// Decode-order index of the sample.
        index: usize,
        /// `"duration"` or `"composition offset"`.
        what: &'static str,
    },
    /// One sample, no duration, no next fragment: nothing tells how long it lasts.
    #[error("the last sample's duration is unknown")]
    UnknownDuration,
}

/// Converts an absolute time in ns to `timescale` ticks, rounding half up, without overflow.
pub fn ns_to_timescale(ns: u64, timescale: u32) -> u64 {
    let ticks = (u128::from(ns) * u128::from(timescale) + NS_PER_SECOND / 2) / NS_PER_SECOND;
    // ns < 2^64 and timescale < 2^32 ⇒ ticks < 2^64 · 2^32 / 10^9 < 2^66; clamp (never reached
    // for timescale ≤ 10^9, which every real timescale is).
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// Absolute presentation time of a sample in ticks.
fn absolute_ticks(
    start_ns: u64,
    offset_ns: i64,
    timescale: u32,
    index: usize,
) -> Result<u64, TimelineError> {
    let ns = i128::from(start_ns) + i128::from(offset_ns);
    let ns = u64::try_from(ns).map_err(|_| TimelineError::TimeOutOfRange { index })?;
    let ticks = ns_to_timescale(ns, timescale);
    if ticks == u64::MAX {
        return Err(TimelineError::TimeOutOfRange { index });
    }
    Ok(ticks)
}

/// Checks the shared preconditions.
fn check(samples: &[StoredSample], timescale: u32) -> Result<(), TimelineError> {
    if samples.is_empty() {
        return Err(TimelineError::NoSamples);
    }
    if u32::try_from(samples.len()).is_err() {
        return Err(TimelineError::TooManySamples(samples.len()));
    }
    if timescale == 0 {
        return Err(TimelineError::Zero { what: "timescale" });
    }
    Ok(())
}

/// Video timing (see the module doc for the DTS rule).
///
/// The last sample (in decode order) lasts until the end of the fragment, which is, by
/// preference: the end of the presentation-last sample per its `BlockDuration`; else
/// `next_fragment_start_ns` — the presentation time of the next fragment's first sample of
/// this track, i.e. its key frame — when plausible (after the last PTS, at most two median
/// frame steps later); else the last PTS plus the median PTS step. The fragment then spans
/// `end − first PTS` exactly, and with an unchanged delay D the next fragment's `tfdt` is
/// exactly this one's `tfdt + duration`.
pub fn video_timing(
    fragment_start_ns: u64,
    samples: &[StoredSample],
    timescale: u32,
    next_fragment_start_ns: Option<u64>,
) -> Result<TrackTiming, TimelineError> {
    video_timing_with(
        fragment_start_ns,
        samples,
        timescale,
        next_fragment_start_ns,
        DecodeTimes::BeforePresentation,
    )
}

/// Where decode times sit relative to presentation times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeTimes {
    /// DTS = sorted PTS − D: every DTS ≤ its PTS, composition offsets ≥ 0. MPEG-TS needs this
    /// (a frame is decoded before it is shown, ISO/IEC 13818-1 §2.4.3.7).
    BeforePresentation,
    /// DTS = sorted PTS: the first decode time equals the earliest presentation time, so a
    /// fragment's `tfdt` is where its pictures start; B-frames get negative composition offsets
    /// (fMP4 `trun` version 1). Players that align each discontinuous fragment by its decode
    /// start (hls.js) then leave no one-frame hole at every fragment boundary.
    AtPresentation,
}

/// [`video_timing`] with the decode-time placement chosen.
pub fn video_timing_with(
    fragment_start_ns: u64,
    samples: &[StoredSample],
    timescale: u32,
    next_fragment_start_ns: Option<u64>,
    decode_times: DecodeTimes,
) -> Result<TrackTiming, TimelineError> {
    check(samples, timescale)?;
    let pts = samples
        .iter()
        .enumerate()
        .map(|(i, s)| absolute_ticks(fragment_start_ns, s.pts_offset_ns, timescale, i))
        .collect::<Result<Vec<u64>, _>>()?;
    let mut sorted = pts.clone();
    sorted.sort_unstable();
    // D = max(sorted[i] − pts[i]); ≥ 0 because the differences sum to zero.
    let delay = sorted
        .iter()
        .zip(&pts)
        .map(|(&s, &p)| i128::from(s) - i128::from(p))
        .max()
        .unwrap_or(0);
    let delay = match decode_times {
        DecodeTimes::BeforePresentation => u64::try_from(delay).unwrap_or(0),
        DecodeTimes::AtPresentation => 0,
    };
    let last = sorted.len() - 1;

    // Median of the positive PTS steps (the frame duration).
    let mut steps: Vec<u64> = sorted
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|&d| d > 0)
        .collect();
    steps.sort_unstable();
    let median_step = steps.get(steps.len() / 2).copied();

    // Presentation end of the fragment.
    let presentation_last = pts
        .iter()
        .enumerate()
        .max_by_key(|&(i, &p)| (p, i))
        .map(|(i, _)| i)
        .unwrap_or(last);
    let end_by_block_duration = match samples[presentation_last].duration_ns {
        Some(duration_ns) => {
            let offset = i64::try_from(duration_ns)
                .ok()
                .and_then(|d| samples[presentation_last].pts_offset_ns.checked_add(d))
                .ok_or(TimelineError::TimeOutOfRange {
                    index: presentation_last,
                })?;
            Some(absolute_ticks(
                fragment_start_ns,
                offset,
                timescale,
                presentation_last,
            )?)
        }
        None => None,
    };
    let end_by_next = next_fragment_start_ns.and_then(|next| {
        let next = ns_to_timescale(next, timescale);
        let d = next.checked_sub(sorted[last]).filter(|&d| d > 0)?;
        match median_step {
            Some(step) if d > step.saturating_mul(2) => None,
            _ => Some(next),
        }
    });
    let end = end_by_block_duration
        .filter(|&e| e > sorted[last])
        .or(end_by_next)
        .or_else(|| median_step.map(|step| sorted[last].saturating_add(step)))
        .ok_or(TimelineError::UnknownDuration)?;

    let base = sorted[0]
        .checked_sub(delay)
        .ok_or(TimelineError::TimeOutOfRange { index: 0 })?;
    let mut out = Vec::with_capacity(samples.len());
    for (i, sample) in samples.iter().enumerate() {
        let dts = sorted[i] - delay; // sorted[i] ≥ sorted[0] ≥ delay
        let next_dts = if i == last {
            end - delay
        } else {
            sorted[i + 1] - delay
        };
        let duration =
            u32::try_from(next_dts - dts).map_err(|_| TimelineError::FieldOutOfRange {
                index: i,
                what: "duration",
            })?;
        let composition_offset =
            i32::try_from(i128::from(pts[i]) - i128::from(dts)).map_err(|_| {
                TimelineError::FieldOutOfRange {
                    index: i,
                    what: "composition offset",
                }
            })?;
        out.push(TimedSample {
            duration,
            composition_offset,
            size: sample.size,
            sync: sample.keyframe,
            pts: pts[i],
            dts,
        });
    }
    Ok(TrackTiming {
        timescale,
        base_decode_time: base,
        samples: out,
        duration: end - sorted[0],
    })
}

/// AAC timing: constant `frame_length` per frame from the first frame's stored time, every
/// frame a sync sample, PTS = DTS.
pub fn audio_timing(
    fragment_start_ns: u64,
    samples: &[StoredSample],
    timescale: u32,
    frame_length: u32,
) -> Result<TrackTiming, TimelineError> {
    check(samples, timescale)?;
    if frame_length == 0 {
        return Err(TimelineError::Zero {
            what: "frame_length",
        });
    }
    let base = absolute_ticks(fragment_start_ns, samples[0].pts_offset_ns, timescale, 0)?;
    let count = samples.len() as u64; // fits u32, checked above
    let duration = count * u64::from(frame_length);
    base.checked_add(duration)
        .ok_or(TimelineError::TimeOutOfRange {
            index: samples.len() - 1,
        })?;
    let out = samples
        .iter()
        .zip(0u64..)
        .map(|(sample, i)| {
            let t = base + i * u64::from(frame_length);
            TimedSample {
                duration: frame_length,
                composition_offset: 0,
                size: sample.size,
                sync: true,
                pts: t,
                dts: t,
            }
        })
        .collect();
    Ok(TrackTiming {
        timescale,
        base_decode_time: base,
        samples: out,
        duration,
    })
}

/// How a track's samples are timed: video by its presentation times, AAC by its frame length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackClock {
    /// Presentation times at [`VIDEO_TIMESCALE`] ([`video_timing_with`]).
    Video,
    /// Constant `frame_length` samples per frame at `sample_rate` ([`audio_timing`]).
    Audio {
        /// The AAC core sampling rate, the track's timescale.
        sample_rate: u32,
        /// Samples per frame (1024 or 960).
        frame_length: u32,
    },
}

/// The timescale of video tracks (the MPEG 90 kHz clock, exact for millisecond timestamps).
pub const VIDEO_TIMESCALE: u32 = 90_000;

impl TrackClock {
    /// The clock of a decoded track codec.
    pub fn of(codec: &crate::codec::Codec) -> Self {
        match codec {
            crate::codec::Codec::Aac(aac) => TrackClock::Audio {
                sample_rate: aac.sample_rate,
                frame_length: aac.frame_length,
            },
            _ => TrackClock::Video,
        }
    }
}

/// A track's timing by its clock, the fragment's end unknown (it is not looked up from the next
/// fragment). Every user of a fragment's length goes through here: the `tfdt`/`trun` of fMP4, the
/// PTS/DTS of MPEG-TS, `EXTINF`, and the fragment length ListFragments reports
/// ([`fragment_length_ms`]), so they are one number (docs/choices.md#fragment-length).
pub fn track_timing(
    fragment_start_ns: u64,
    samples: &[StoredSample],
    clock: TrackClock,
    decode_times: DecodeTimes,
) -> Result<TrackTiming, TimelineError> {
    match clock {
        TrackClock::Video => video_timing_with(
            fragment_start_ns,
            samples,
            VIDEO_TIMESCALE,
            None,
            decode_times,
        ),
        TrackClock::Audio {
            sample_rate,
            frame_length,
        } => audio_timing(fragment_start_ns, samples, sample_rate, frame_length),
    }
}

/// What a track's length follows from, kept without its sample table so a playlist of thousands
/// of fragments needs no sample tables (`EXTINF`, [`TrackSpan::duration`]): computed once at
/// ingest, stored in the catalog's narrow fragment summaries.
///
/// A length depends on the fragment's start only through the rounding of absolute times, and a
/// start in whole milliseconds moves every absolute time by a whole number of ticks at the
/// 90 kHz video clock (1 ms = 90 ticks) and leaves an AAC track's frame count alone, so the
/// length is the same at every millisecond-aligned start; what a start decides is only whether
/// times before the timeline's zero make the timing fail. [`TrackSpan::duration`] gives the
/// length where it is certain to equal [`track_timing`]'s, and `None` where only the samples
/// can tell (a failure, or a start near the timeline's zero): then the caller times the samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackSpan {
    /// How many samples the track has.
    pub samples: u64,
    /// `pts_offset_ns` of the first sample in decode order (where an AAC track's timing starts).
    pub first_pts_offset_ns: i64,
    /// The smallest `pts_offset_ns`.
    pub min_pts_offset_ns: i64,
    /// The track timed on the video clock ([`TrackClock::Video`]), when that succeeds.
    pub video: Option<VideoSpan>,
}

/// [`TrackSpan`]'s video-clock part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoSpan {
    /// `TrackTiming::duration` at [`VIDEO_TIMESCALE`] (the same at every ms-aligned start).
    pub duration: u64,
    /// `TrackTiming::base_decode_time` minus the start in ticks (start-independent; the timing
    /// fails when the start makes the base decode time negative).
    pub base_offset: i64,
}

/// A millisecond-aligned start far from zero, where a video timing cannot run out of range.
const REFERENCE_START_MS: u64 = 1 << 40;

impl TrackSpan {
    /// The span of `samples` (decode order, as stored).
    pub fn of(samples: &[StoredSample]) -> Self {
        let start_ns = REFERENCE_START_MS * 1_000_000;
        let video = video_timing_with(
            start_ns,
            samples,
            VIDEO_TIMESCALE,
            None,
            DecodeTimes::BeforePresentation,
        )
        .ok()
        .and_then(|t| {
            let start_ticks = i128::from(REFERENCE_START_MS) * 90;
            let base_offset = i64::try_from(i128::from(t.base_decode_time) - start_ticks).ok()?;
            Some(VideoSpan {
                duration: t.duration,
                base_offset,
            })
        });
        TrackSpan {
            samples: samples.len() as u64,
            first_pts_offset_ns: samples.first().map_or(0, |s| s.pts_offset_ns),
            min_pts_offset_ns: samples.iter().map(|s| s.pts_offset_ns).min().unwrap_or(0),
            video,
        }
    }

    /// `(duration, timescale)` of [`track_timing`] at `fragment_start_ns` when it is certain to
    /// be that (the start is whole milliseconds and the timing succeeds there), else `None`: the
    /// caller then times the samples themselves, which gives the same answer or the error.
    pub fn duration(&self, fragment_start_ns: u64, clock: TrackClock) -> Option<(u64, u32)> {
        if !fragment_start_ns.is_multiple_of(1_000_000) || self.samples == 0 {
            return None;
        }
        u32::try_from(self.samples).ok()?;
        let start = i128::from(fragment_start_ns);
        match clock {
            TrackClock::Video => {
                let video = self.video?;
                let start_ticks = start / 1_000_000 * 90;
                let in_range = start + i128::from(self.min_pts_offset_ns) >= 0
                    && start_ticks + i128::from(video.base_offset) >= 0;
                in_range.then_some((video.duration, VIDEO_TIMESCALE))
            }
            TrackClock::Audio {
                sample_rate,
                frame_length,
            } => {
                if sample_rate == 0 || frame_length == 0 {
                    return None;
                }
                let first = u64::try_from(start + i128::from(self.first_pts_offset_ns)).ok()?;
                let base = ns_to_timescale(first, sample_rate);
                let duration = self.samples * u64::from(frame_length);
                (base != u64::MAX && base.checked_add(duration).is_some())
                    .then_some((duration, sample_rate))
            }
        }
    }
}

/// A fragment's length: the span of its first track (track 1, the video or the only audio), from
/// that track's first presentation time to the end of its last sample, in milliseconds (rounded
/// to the nearest). A continuous stream whose fragments start at their track-1 key frames then
/// tiles exactly: length(n) = start(n+1) − start(n) (docs/choices.md#fragment-length).
pub fn fragment_length_ms(
    fragment_start_ns: u64,
    track_one: &[StoredSample],
    clock: TrackClock,
) -> Result<u64, TimelineError> {
    let timing = track_timing(
        fragment_start_ns,
        track_one,
        clock,
        DecodeTimes::BeforePresentation,
    )?;
    let ms = (u128::from(timing.duration) * 1000 + u128::from(timing.timescale) / 2)
        / u128::from(timing.timescale);
    Ok(u64::try_from(ms).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;
    const ORIGIN: u64 = 1_764_000_000_123_000_000;

    fn sample(ms: i64, keyframe: bool) -> StoredSample {
        StoredSample {
            pts_offset_ns: ms * MS,
            duration_ns: None,
            size: 100,
            keyframe,
        }
    }

    /// [`TrackSpan::duration`] is [`track_timing`]'s duration wherever it answers, and answers
    /// at every ms-aligned start where the timing succeeds.
    #[test]
    fn track_span_matches_track_timing() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let clocks = [
            TrackClock::Video,
            TrackClock::Audio {
                sample_rate: 44_100,
                frame_length: 1024,
            },
            TrackClock::Audio {
                sample_rate: 48_000,
                frame_length: 960,
            },
        ];
        for case in 0..3000 {
            let n = (next() % 40) as usize;
            // Frame steps of odd ns lengths (timecode scales other than 1 ms), B-frame reorder,
            // offsets before the fragment start, some block durations.
            let step = 33_366_667 + (next() % 1000) as i64;
            let lead = (next() % 3) as i64 * step - step;
            let mut samples: Vec<StoredSample> = (0..n)
                .map(|i| StoredSample {
                    pts_offset_ns: lead + i as i64 * step,
                    duration_ns: (next() % 4 == 0).then_some(step as u64),
                    size: 10,
                    keyframe: i == 0,
                })
                .collect();
            if n > 3 && case % 2 == 0 {
                for i in (1..n - 1).step_by(3) {
                    samples.swap(i, i + 1);
                }
            }
            let span = TrackSpan::of(&samples);
            for start_ms in [0u64, 1, 17, 33, 34, 67, 1000, 1_764_000_000_123] {
                let start_ns = start_ms * 1_000_000;
                for clock in clocks {
                    let full =
                        track_timing(start_ns, &samples, clock, DecodeTimes::BeforePresentation)
                            .map(|t| (t.duration, t.timescale));
                    match span.duration(start_ns, clock) {
                        Some(d) => assert_eq!(Ok(d), full, "case {case} start {start_ms}"),
                        None => assert!(
                            full.is_err() || start_ms < 1000,
                            "case {case} start {start_ms}: {full:?}"
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn ip_frames_have_zero_offsets() {
        let samples: Vec<_> = (0..30).map(|i| sample(i * 1000 / 30, i == 0)).collect();
        let t = video_timing(ORIGIN, &samples, 90_000, Some(ORIGIN + 1_000_000_000)).unwrap();
        assert!(t.samples.iter().all(|s| s.composition_offset == 0));
        assert_eq!(t.base_decode_time, ns_to_timescale(ORIGIN, 90_000));
        assert_eq!(t.duration, 90_000);
        assert_eq!(
            t.samples.iter().map(|s| u64::from(s.duration)).sum::<u64>(),
            t.duration
        );
        assert!(t.samples[0].sync && !t.samples[1].sync);
    }

    #[test]
    fn b_frames_reorder() {
        // Decode order I0 P3 B1 B2 P6 B4 B5 (frame indices = presentation order), 40 ms frames.
        let order = [0, 3, 1, 2, 6, 4, 5];
        let samples: Vec<_> = order.iter().map(|&f| sample(f * 40, f == 0)).collect();
        let t = video_timing(ORIGIN, &samples, 90_000, None).unwrap();
        let step = 3600;
        // D = one frame: dts = sorted − 3600.
        let base = ORIGIN * 9 / 100_000 - step;
        assert_eq!(t.base_decode_time, base);
        let offsets: Vec<i32> = t.samples.iter().map(|s| s.composition_offset).collect();
        assert_eq!(offsets, [3600, 10800, 0, 0, 10800, 0, 0]);
        assert!(t.samples.iter().all(|s| s.duration == 3600));
        assert_eq!(t.duration, 7 * 3600);
    }

    #[test]
    fn b_frames_with_decode_at_presentation() {
        let order = [0, 3, 1, 2, 6, 4, 5];
        let samples: Vec<_> = order.iter().map(|&f| sample(f * 40, f == 0)).collect();
        let t =
            video_timing_with(ORIGIN, &samples, 90_000, None, DecodeTimes::AtPresentation).unwrap();
        let start = ORIGIN * 9 / 100_000;
        // The first decode time is the first picture's presentation time.
        assert_eq!(t.base_decode_time, start);
        let offsets: Vec<i32> = t.samples.iter().map(|s| s.composition_offset).collect();
        assert_eq!(offsets, [0, 7200, -3600, -3600, 7200, -3600, -3600]);
        // Same presentation times and span as the shifted variant.
        let shifted = video_timing(ORIGIN, &samples, 90_000, None).unwrap();
        let pts = |t: &TrackTiming| t.samples.iter().map(|s| s.pts).collect::<Vec<_>>();
        assert_eq!(pts(&t), pts(&shifted));
        assert_eq!(t.duration, shifted.duration);
        assert!(t
            .samples
            .iter()
            .all(|s| s.dts == (s.pts as i128 - i128::from(s.composition_offset)) as u64));
    }

    #[test]
    fn last_duration_sources() {
        let mut samples: Vec<_> = (0..3).map(|i| sample(i * 40, i == 0)).collect();
        // Median step.
        let t = video_timing(ORIGIN, &samples, 1000, None).unwrap();
        assert_eq!(t.samples[2].duration, 40);
        // Next fragment start, plausible.
        let t = video_timing(ORIGIN, &samples, 1000, Some(ORIGIN + 110 * MS as u64)).unwrap();
        assert_eq!(t.samples[2].duration, 30);
        // Implausible (gap > 2 steps): median step.
        let t = video_timing(ORIGIN, &samples, 1000, Some(ORIGIN + 500 * MS as u64)).unwrap();
        assert_eq!(t.samples[2].duration, 40);
        // BlockDuration wins.
        samples[2].duration_ns = Some(20 * MS as u64);
        let t = video_timing(ORIGIN, &samples, 1000, Some(ORIGIN + 110 * MS as u64)).unwrap();
        assert_eq!(t.samples[2].duration, 20);
        // One sample and nothing else: unknown.
        assert_eq!(
            video_timing(ORIGIN, &samples[..1], 1000, None),
            Err(TimelineError::UnknownDuration)
        );
    }

    #[test]
    fn no_drift_across_fragments() {
        // 30 fps in ns (33 333 333 ns steps) at 90 kHz: fragment boundaries line up exactly.
        let frame_ns = 1_000_000_000u64 / 30;
        let mut end_prev = None;
        for fragment in 0..100u64 {
            let start = ORIGIN + fragment * 30 * frame_ns;
            let samples: Vec<_> = (0..30)
                .map(|i| StoredSample {
                    pts_offset_ns: (i * frame_ns) as i64,
                    duration_ns: None,
                    size: 1,
                    keyframe: i == 0,
                })
                .collect();
            let t = video_timing(start, &samples, 90_000, Some(start + 30 * frame_ns)).unwrap();
            if let Some(end) = end_prev {
                assert_eq!(t.base_decode_time, end, "fragment {fragment}");
            }
            end_prev = Some(t.base_decode_time + t.duration);
        }
    }

    #[test]
    fn audio_is_constant() {
        let samples: Vec<_> = (0..47).map(|i| sample(i * 21 + i % 3 / 2, true)).collect();
        let t = audio_timing(ORIGIN, &samples, 48_000, 1024).unwrap();
        assert_eq!(t.base_decode_time, ns_to_timescale(ORIGIN, 48_000));
        assert_eq!(t.duration, 47 * 1024);
        assert!(t
            .samples
            .iter()
            .all(|s| s.duration == 1024 && s.composition_offset == 0 && s.sync));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(
            video_timing(0, &[], 90_000, None),
            Err(TimelineError::NoSamples)
        );
        assert_eq!(
            audio_timing(0, &[], 48_000, 1024),
            Err(TimelineError::NoSamples)
        );
        let s = [sample(0, true), sample(40, false)];
        assert!(video_timing(0, &s, 0, None).is_err());
        assert!(audio_timing(0, &s, 48_000, 0).is_err());
        assert!(video_timing(0, &[sample(-1, true), sample(40, false)], 90_000, None).is_err());
        // B-frames at the origin need a negative DTS.
        let order = [sample(0, true), sample(80, false), sample(40, false)];
        assert!(video_timing(0, &order, 90_000, None).is_err());
        assert!(
            video_timing(u64::MAX, &s, 90_000, None).is_err()
                || video_timing(u64::MAX, &s, 90_000, None).is_ok()
        );
        // A 30-hour frame does not fit a u32 duration at 90 kHz.
        let huge = [sample(0, true), sample(30 * 3600 * 1000, false)];
        assert!(matches!(
            video_timing(0, &huge, 90_000, None),
            Err(TimelineError::FieldOutOfRange { .. })
        ));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn arb_sample() -> impl Strategy<Value = StoredSample> {
            (
                any::<i64>(),
                proptest::option::of(any::<u64>()),
                any::<u32>(),
                any::<bool>(),
            )
                .prop_map(|(pts_offset_ns, duration_ns, size, keyframe)| {
                    StoredSample {
                        pts_offset_ns,
                        duration_ns,
                        size,
                        keyframe,
                    }
                })
        }

        /// B-frame-like input: frame k of a GOP shown at `k * step`, decoded with each run of up
        /// to `max_b` frames moved after the next reference frame.
        fn arb_gop() -> impl Strategy<Value = (Vec<StoredSample>, i64)> {
            (
                2usize..60,
                1i64..100_000_000,
                0usize..4,
                -50_000_000i64..50_000_000,
            )
                .prop_map(|(n, step, max_b, shift)| {
                    let mut order = Vec::with_capacity(n);
                    let mut k = 1;
                    order.push(0);
                    while k < n {
                        let b = max_b.min(n - k - 1);
                        order.push(k + b); // the reference frame first
                        order.extend(k..k + b); // then the B-frames it anchors
                        k += b + 1;
                    }
                    let samples = order
                        .iter()
                        .map(|&f| StoredSample {
                            pts_offset_ns: f as i64 * step + shift,
                            duration_ns: None,
                            size: 1,
                            keyframe: f == 0,
                        })
                        .collect();
                    (samples, step)
                })
        }

        proptest! {
            #[test]
            fn arbitrary_input_never_panics(
                start in any::<u64>(),
                samples in proptest::collection::vec(arb_sample(), 0..20),
                timescale in any::<u32>(),
                next in proptest::option::of(any::<u64>()),
                frame_length in any::<u32>(),
            ) {
                let _ = video_timing(start, &samples, timescale, next);
                let _ = audio_timing(start, &samples, timescale, frame_length);
            }

            #[test]
            fn video_invariants((samples, _step) in arb_gop(), start in 1u64 << 40..1u64 << 62, next_gap in proptest::option::of(0i64..300_000_000)) {
                let last_pts = samples.iter().map(|s| s.pts_offset_ns).max().unwrap();
                let next = next_gap.map(|g| (start as i64 + last_pts + g) as u64);
                let t = video_timing(start, &samples, 90_000, next).unwrap();
                prop_assert_eq!(t.samples.len(), samples.len());
                prop_assert_eq!(t.base_decode_time, t.samples[0].dts);
                prop_assert!(t.samples.windows(2).all(|w| w[0].dts <= w[1].dts));
                prop_assert!(t.samples.iter().all(|s| s.composition_offset >= 0 && s.dts <= s.pts));
                prop_assert!(t.samples.iter().all(|s| s.pts - s.dts == s.composition_offset as u64));
                for (s, stored) in t.samples.iter().zip(&samples) {
                    prop_assert_eq!(s.pts, ns_to_timescale((start as i64 + stored.pts_offset_ns) as u64, 90_000));
                    prop_assert_eq!(s.sync, stored.keyframe);
                }
                for w in t.samples.windows(2) {
                    prop_assert_eq!(w[0].dts + u64::from(w[0].duration), w[1].dts);
                }
                prop_assert_eq!(t.samples.iter().map(|s| u64::from(s.duration)).sum::<u64>(), t.duration);
                prop_assert!(t.samples.last().unwrap().duration > 0);
                // I/P only: no reordering, no offsets.
                if samples.windows(2).all(|w| w[0].pts_offset_ns < w[1].pts_offset_ns) {
                    prop_assert!(t.samples.iter().all(|s| s.composition_offset == 0));
                }
            }

            #[test]
            fn audio_invariants(n in 1usize..200, start in 0u64..1u64 << 62, rate in prop::sample::select(vec![8000u32, 44_100, 48_000, 96_000])) {
                let samples: Vec<_> = (0..n).map(|i| StoredSample { pts_offset_ns: i as i64 * 21_000_000, duration_ns: None, size: 9, keyframe: true }).collect();
                let t = audio_timing(start, &samples, rate, 1024).unwrap();
                prop_assert_eq!(t.duration, n as u64 * 1024);
                prop_assert_eq!(t.base_decode_time, ns_to_timescale(start, rate));
                prop_assert!(t.samples.iter().enumerate().all(|(i, s)| s.dts == t.base_decode_time + i as u64 * 1024 && s.pts == s.dts));
            }
        }
    }

    #[test]
    fn fragment_length_is_track_one_span() {
        // 30 fps video from 0 with millisecond timecodes (0, 33, 67, ..., 967): the last frame lasts the
        // median step (33 ms), so the 30 frames end at 1000 ms.
        let video: Vec<_> = (0..30)
            .map(|i| sample((i * 1000 + 15) / 30, i == 0))
            .collect();
        assert_eq!(
            fragment_length_ms(ORIGIN, &video, TrackClock::Video).unwrap(),
            1000
        );
        // Starting later than the fragment (an audio frame opened the Cluster): still its own span.
        let late: Vec<_> = (0..30)
            .map(|i| sample(19 + (i * 1000 + 15) / 30, i == 0))
            .collect();
        assert_eq!(
            fragment_length_ms(ORIGIN, &late, TrackClock::Video).unwrap(),
            1000
        );
        // AAC: 47 frames of 1024 samples at 48 kHz = 1002.67 ms, whatever the jittery ms timecodes.
        let audio: Vec<_> = (0..47).map(|i| sample(i * 21, true)).collect();
        let aac = TrackClock::Audio {
            sample_rate: 48_000,
            frame_length: 1024,
        };
        assert_eq!(fragment_length_ms(ORIGIN, &audio, aac).unwrap(), 1003);
        // The same number EXTINF is made of.
        let t = track_timing(
            ORIGIN,
            &video,
            TrackClock::Video,
            DecodeTimes::AtPresentation,
        )
        .unwrap();
        assert_eq!(t.duration * 1000 / u64::from(t.timescale), 1000);
    }
}
