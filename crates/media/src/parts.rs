//! Where one track of one fragment is cut into LL-HLS partial segments (RFC 8216bis §4.4.4.9,
//! `EXT-X-PART`; docs/architecture.md#low-latency-hls). Pure: a function of the track's timing, so
//! the parts served from memory while the fragment is still arriving and the parts of the same
//! fragment once it is stored are the same sample ranges with the same times, and together they
//! are exactly the fragment's whole segment (the same `tfdt`, durations and bytes, cut in pieces).
//!
//! A part may end before sample `j` only where the presentation order does not cross the cut:
//! every sample before `j` is shown before every sample from `j` on. Without B-frames that is
//! every frame; with them, every anchor frame (I or P) that starts a mini-GOP. Then decode times
//! placed at the sorted presentation times ([`crate::timeline::DecodeTimes::AtPresentation`],
//! what fMP4 segments use) are the same whether the samples after the cut are known or not.
//!
//! While the fragment is still arriving, a cut is only used once a later cut exists among the
//! samples received: the samples between them are then all known, and with them the smallest
//! presentation time after the first cut, which is the last sample's end before it. This assumes
//! what encoders do: a frame decoded after an anchor is not shown before the previous anchor.

use std::ops::Range;

use crate::timeline::TrackTiming;

/// One part of a track of a fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The part's samples: indices into the track's samples, in decode order.
    pub samples: Range<usize>,
    /// Its first sample is a sync sample (`INDEPENDENT=YES`).
    pub independent: bool,
    /// Sum of its sample durations, in the track's timescale.
    pub duration: u64,
}

/// Cuts `timing` (the samples known so far, decode times at presentation times for video) into
/// parts of at most `target` ticks each, where cuts allow it: each part ends at the last allowed
/// cut within `target` of its start, or at the first one after it when there is none within.
///
/// `complete`: `timing` holds the fragment's every sample. Otherwise only parts that more samples
/// cannot change are returned: the last sample's duration and the tail after the last usable cut
/// are still open.
pub fn cut(timing: &TrackTiming, target: u64, complete: bool) -> Vec<Part> {
    let samples = &timing.samples;
    let n = samples.len();
    if n == 0 {
        return Vec::new();
    }
    // allowed[j]: a part may end before sample j (0 < j < n).
    let mut allowed = vec![false; n + 1];
    let mut min_after = vec![u64::MAX; n + 1];
    for j in (0..n).rev() {
        min_after[j] = min_after[j + 1].min(samples[j].pts);
    }
    let mut max_before = 0u64;
    for j in 1..n {
        max_before = max_before.max(samples[j - 1].pts);
        allowed[j] = max_before < min_after[j];
    }
    // While samples still arrive, a cut is final once a later allowed cut exists: the samples
    // between them are then all known (the last allowed cut itself may still move).
    let usable_end = if complete {
        allowed[n] = true;
        n
    } else {
        match (1..n).rev().filter(|&j| allowed[j]).nth(1) {
            Some(j) => j,
            None => return Vec::new(),
        }
    };
    // Times of the cut points: decode time of sample j (its start), or the end of the last one.
    let start_of = |j: usize| -> u64 {
        if j < n {
            samples[j].dts
        } else {
            samples[n - 1].dts + u64::from(samples[n - 1].duration)
        }
    };
    let mut parts = Vec::new();
    let mut start = 0;
    while start < usable_end {
        let t0 = start_of(start);
        let mut end = None;
        let mut first_after = None;
        let cuts = (start + 1..=usable_end).filter(|&j| allowed[j]);
        for j in cuts {
            if start_of(j) - t0 <= target {
                end = Some(j);
            } else {
                first_after = Some(j);
                break;
            }
        }
        let end = match (end, first_after) {
            // The last cut within target is final once a cut past it is known, or at the end.
            (Some(e), Some(_)) => e,
            (Some(e), None) if complete || e < usable_end => e,
            // Within target up to the last usable cut: the next samples may extend it.
            (Some(_), None) => break,
            (None, Some(after)) => after,
            (None, None) => break,
        };
        let duration = samples[start..end]
            .iter()
            .map(|s| u64::from(s.duration))
            .sum();
        parts.push(Part {
            samples: start..end,
            independent: samples[start].sync,
            duration,
        });
        start = end;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{self, DecodeTimes, StoredSample, VIDEO_TIMESCALE};
    use proptest::prelude::*;

    const FRAME_NS: i64 = 33_333_333;

    /// Samples of a video track in decode order: `gop` frames per GOP, with `bframes` B-frames
    /// between anchors (I/P), presentation times in frame steps.
    fn video(frames: usize, gop: usize, bframes: usize) -> Vec<StoredSample> {
        let mut order = Vec::new(); // presentation indices in decode order
        let mut next = 0;
        while next < frames {
            let gop_end = (next + gop).min(frames);
            order.push(next); // I
            let mut prev_anchor = next;
            while prev_anchor + 1 < gop_end {
                let anchor = (prev_anchor + bframes + 1).min(gop_end - 1);
                order.push(anchor);
                order.extend(prev_anchor + 1..anchor);
                prev_anchor = anchor;
            }
            next = gop_end;
        }
        order
            .iter()
            .map(|&p| StoredSample {
                pts_offset_ns: p as i64 * FRAME_NS,
                duration_ns: None,
                size: 100 + p as u32,
                keyframe: p % gop == 0,
            })
            .collect()
    }

    fn timing_of(samples: &[StoredSample]) -> TrackTiming {
        timeline::video_timing_with(
            1_000_000_000,
            samples,
            VIDEO_TIMESCALE,
            None,
            DecodeTimes::AtPresentation,
        )
        .unwrap()
    }

    const TARGET: u64 = 30_060; // 0.334 s at 90 kHz

    #[test]
    fn thirty_fps_without_b_frames_cuts_every_ten_frames() {
        let t = timing_of(&video(60, 60, 0));
        let parts = cut(&t, TARGET, true);
        assert_eq!(parts.len(), 6);
        assert!(parts.iter().all(|p| p.samples.len() == 10));
        assert!(parts[0].independent && !parts[1].independent);
        assert_eq!(parts.iter().map(|p| p.duration).sum::<u64>(), t.duration);
        assert!(parts.iter().all(|p| p.duration <= TARGET));
    }

    #[test]
    fn b_frames_are_never_split_from_their_anchor() {
        let samples = video(60, 60, 2);
        let t = timing_of(&samples);
        let parts = cut(&t, TARGET, true);
        assert_eq!(parts.iter().map(|p| p.duration).sum::<u64>(), t.duration);
        for p in &parts {
            // Nothing before a part is shown after anything in it or after it.
            let before = t.samples[..p.samples.start].iter().map(|s| s.pts).max();
            let from = t.samples[p.samples.start..].iter().map(|s| s.pts).min();
            assert!(before.is_none() || before < from, "{p:?}");
            assert!(p.duration <= TARGET, "{p:?}");
        }
    }

    #[test]
    fn nothing_is_final_before_a_second_cut_is_known() {
        let samples = video(60, 60, 0);
        assert!(cut(&timing_of(&samples[..2]), TARGET, false).is_empty());
        // Ten frames fill a part, but it is final only once a confirmed cut past it is known:
        // the cut before frame 11 is confirmed by the one before frame 12.
        assert!(cut(&timing_of(&samples[..12]), TARGET, false).is_empty());
        assert_eq!(cut(&timing_of(&samples[..13]), TARGET, false).len(), 1);
    }

    proptest! {
        /// What is cut while samples arrive is what is cut once they are all there: the same
        /// ranges, the same durations, whatever the prefix.
        #[test]
        fn parts_of_a_prefix_are_parts_of_the_whole(
            frames in 2usize..150, gop in 1usize..70, bframes in 0usize..4,
            target in 1u64..200_000, prefix in 1usize..150,
        ) {
            let samples = video(frames, gop, bframes);
            let whole = cut(&timing_of(&samples), target, true);
            prop_assert_eq!(whole.iter().map(|p| p.duration).sum::<u64>(), timing_of(&samples).duration);
            prop_assert_eq!(whole.last().map(|p| p.samples.end), Some(samples.len()));
            let prefix = prefix.clamp(2, samples.len());
            let early = cut(&timing_of(&samples[..prefix]), target, false);
            prop_assert!(early.len() <= whole.len());
            prop_assert_eq!(&whole[..early.len()], &early[..]);
        }
    }
}
