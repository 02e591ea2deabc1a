//! LL-HLS part cutting (`media::parts::cut`) over any sample table a producer can send: timed as fMP4
//! segments are (`media::timeline::track_timing`, decode times at presentation times), cut at any target.
//!
//! 1. Nothing panics, whatever the presentation order, durations or target.
//! 2. A complete track's parts tile it: consecutive sample ranges from 0 to the end, durations adding up to
//!    the track's, each part's independence its first sample's sync flag.
//! 3. What is cut from any prefix while samples arrive is a prefix of the complete cut, with the same ranges
//!    and durations (the parts served in flight are the stored ones), for encoders whose frames decoded after
//!    an anchor are not shown before the previous anchor; for others only 1 and 2 are checked.
#![no_main]

use libfuzzer_sys::{arbitrary, fuzz_target};
use media::parts;
use media::timeline::{self, DecodeTimes, StoredSample, TrackClock};

#[derive(arbitrary::Arbitrary, Debug)]
struct Input {
    /// (pts offset in ms, has a duration, key frame)
    samples: Vec<(i16, bool, bool)>,
    audio: bool,
    target_ms: u16,
    prefix: u8,
}

fuzz_target!(|input: Input| {
    let samples: Vec<StoredSample> = input
        .samples
        .iter()
        .take(400)
        .map(|&(pts_ms, has_duration, keyframe)| StoredSample {
            pts_offset_ns: i64::from(pts_ms) * 1_000_000,
            duration_ns: has_duration.then_some(33_000_000),
            size: 10,
            keyframe,
        })
        .collect();
    let clock = if input.audio {
        TrackClock::Audio {
            sample_rate: 48_000,
            frame_length: 1024,
        }
    } else {
        TrackClock::Video
    };
    let start_ns = 1_000_000_000_000;
    let Ok(whole) = timeline::track_timing(start_ns, &samples, clock, DecodeTimes::AtPresentation)
    else {
        return;
    };
    let target = u64::from(input.target_ms) * u64::from(whole.timescale) / 1000;
    let cut = parts::cut(&whole, target, true);
    let mut next = 0;
    for p in &cut {
        assert_eq!(p.samples.start, next);
        assert!(p.samples.end > p.samples.start);
        assert_eq!(p.independent, whole.samples[p.samples.start].sync);
        next = p.samples.end;
    }
    assert_eq!(next, samples.len());
    assert_eq!(cut.iter().map(|p| p.duration).sum::<u64>(), whole.duration);

    let prefix = usize::from(input.prefix).min(samples.len());
    if let Ok(early) = timeline::track_timing(
        start_ns,
        &samples[..prefix],
        clock,
        DecodeTimes::AtPresentation,
    ) {
        let early = parts::cut(&early, target, false);
        // Encoders that keep frames after an anchor behind the previous anchor's presentation time.
        let well_ordered = (1..samples.len()).all(|j| {
            let before = samples[..j].iter().map(|s| s.pts_offset_ns).max();
            let anchor = samples[j].pts_offset_ns > before.unwrap_or(i64::MIN);
            !anchor || samples[j..].iter().all(|s| Some(s.pts_offset_ns) > before)
        });
        if well_ordered {
            assert!(early.len() <= cut.len(), "{early:?} / {cut:?}");
            assert_eq!(&cut[..early.len()], &early[..]);
        }
    }
});
