//! How each committed fragment joins the one before it on its stream: its gapless sequence number
//! and its [`Continuity`] flags and counters. Pure (no I/O): every [`crate::Catalog`] backend keeps
//! one [`StreamEdge`] per stream and calls [`StreamEdge::advance`] inside the transaction that
//! commits the fragment, so two backends cannot number or flag the same fragments differently.

use crate::{NewFragment, Timestamp};

/// How a fragment joins the one ingested before it on its stream, decided once at commit so a
/// LIVE playlist's EXT-X-DISCONTINUITY-SEQUENCE is the same on every reload (RFC 8216 §4.3.3.3;
/// docs/choices.md#live-playlist-sequence-stability, AVPlayer -12312).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Continuity {
    /// `Continuity::*` bits for this fragment.
    pub flags: u8,
    /// Per flag bit (in bit order), how many fragments of the stream up to and including this one
    /// had it.
    pub counts: [u64; 4],
}

impl Continuity {
    /// A track's codec private data (or the set of tracks) differs from the previous fragment's.
    pub const CODEC_CHANGE: u8 = 1;
    /// Producer start differs from the previous fragment's producer end by more than 50 ms
    /// (the ON_DISCONTINUITY rule of GetHLSStreamingSessionURL), or a codec change.
    pub const PRODUCER_GAP: u8 = 2;
    /// The same on server timestamps, or a codec change.
    pub const SERVER_GAP: u8 = 4;
    /// A producer pause: either timestamp jumps by more than [`Continuity::PAUSE_MS`], or a codec change.
    pub const PAUSE: u8 = 8;
    pub const GAP_MS: i64 = 50;
    pub const PAUSE_MS: i64 = 2000;

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// How many fragments up to and including this one had `flag` (a single bit).
    pub fn count(&self, flag: u8) -> u64 {
        self.counts[flag.trailing_zeros() as usize & 3]
    }
}

/// Per stream: the last committed fragment's ends, codec configs and counters, which is all the
/// next fragment is compared with. Backends persist it with the stream, in the same transaction
/// as the fragment row; its serde form is stored as it is (the SQLite catalog's
/// `stream.ingest_state` JSON: `{"next_sequence":…,"producer_end_ms":…,"server_end_ms":…,
/// "configs":[[track,config id],…],"counts":[…]}`), so field names must not change.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamEdge {
    next_sequence: u64,
    producer_end_ms: Option<i64>,
    server_end_ms: Option<i64>,
    /// (track number, codec config id) of every track of the last fragment, in fragment order.
    configs: Vec<(u64, i64)>,
    counts: [u64; 4],
}

impl StreamEdge {
    /// The sequence the next fragment gets (0 for a stream that never had one).
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// The edge after a fragment that ended at these times with these (track, codec config id)
    /// pairs: what LL-HLS compares a fragment still arriving with (`server::hls::ll`).
    pub fn ending_at(
        producer_end: Timestamp,
        server_end: Timestamp,
        configs: Vec<(u64, i64)>,
    ) -> Self {
        StreamEdge {
            producer_end_ms: Some(producer_end.0),
            server_end_ms: Some(server_end.0),
            configs,
            ..StreamEdge::default()
        }
    }

    /// The flags a fragment starting at these times on these (track, codec config id) pairs gets
    /// after this edge, by the rules of [`StreamEdge::advance`].
    pub fn flags_for(
        &self,
        configs: &[(u64, i64)],
        producer_start: Timestamp,
        server_start: Timestamp,
    ) -> u8 {
        let mut flags = 0;
        if self.producer_end_ms.is_some() {
            let codec_change = configs != self.configs.as_slice();
            let gap = |end: Option<i64>, start: i64| end.map_or(0, |e| start.abs_diff(e));
            let producer_gap = gap(self.producer_end_ms, producer_start.0);
            let server_gap = gap(self.server_end_ms, server_start.0);
            let over = |gap: u64, limit: i64| gap > limit.unsigned_abs();
            if codec_change {
                flags |= Continuity::CODEC_CHANGE;
            }
            if codec_change || over(producer_gap, Continuity::GAP_MS) {
                flags |= Continuity::PRODUCER_GAP;
            }
            if codec_change || over(server_gap, Continuity::GAP_MS) {
                flags |= Continuity::SERVER_GAP;
            }
            if codec_change
                || over(producer_gap, Continuity::PAUSE_MS)
                || over(server_gap, Continuity::PAUSE_MS)
            {
                flags |= Continuity::PAUSE;
            }
        }
        flags
    }

    /// Takes `f` as the stream's next fragment: returns its sequence (one more than the previous
    /// fragment's, from 0) and its continuity, and moves the edge to `f`'s end. The first fragment
    /// of a stream has no flags. After that, compared with the previous fragment:
    /// - a different list of (track, codec config) is a [`Continuity::CODEC_CHANGE`], and also
    ///   counts as every other flag (a player must reset its decoder either way);
    /// - a producer (server) start more than [`Continuity::GAP_MS`] away from the previous
    ///   producer (server) end, before or after it, is a [`Continuity::PRODUCER_GAP`]
    ///   ([`Continuity::SERVER_GAP`]);
    /// - either start more than [`Continuity::PAUSE_MS`] away is a [`Continuity::PAUSE`].
    pub fn advance(&mut self, f: &NewFragment) -> (u64, Continuity) {
        let configs: Vec<(u64, i64)> = f
            .tracks
            .iter()
            .map(|t| (t.track.0, t.codec_config.0))
            .collect();
        let mut flags = self.flags_for(&configs, f.producer_timestamp, f.server_timestamp);
        if f.begins_discontinuity && self.producer_end_ms.is_some() {
            flags |= Continuity::PRODUCER_GAP | Continuity::SERVER_GAP | Continuity::PAUSE;
        }
        for (bit, count) in self.counts.iter_mut().enumerate() {
            if flags & (1 << bit) != 0 {
                *count += 1;
            }
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let duration_ms = i64::try_from(f.duration_ms).unwrap_or(i64::MAX);
        self.producer_end_ms = Some(f.producer_timestamp.0.saturating_add(duration_ms));
        self.server_end_ms = Some(f.server_timestamp.0.saturating_add(duration_ms));
        self.configs = configs;
        (
            sequence,
            Continuity {
                flags,
                counts: self.counts,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CodecConfigId, FragmentNumber, FragmentTrack, MediaLocation, StreamId, Timestamp};
    use media::TrackNumber;
    use proptest::prelude::*;

    const C: Continuity = Continuity {
        flags: 0,
        counts: [0; 4],
    };
    const ALL: u8 = Continuity::CODEC_CHANGE
        | Continuity::PRODUCER_GAP
        | Continuity::SERVER_GAP
        | Continuity::PAUSE;

    /// A one-second fragment starting at `producer_ms` / `server_ms`, its tracks on `configs`.
    fn frag(producer_ms: i64, server_ms: i64, configs: &[i64]) -> NewFragment {
        NewFragment {
            writer_epoch: None,
            begins_discontinuity: false,
            stream: StreamId(1),
            number: FragmentNumber(0),
            producer_timestamp: Timestamp(producer_ms),
            server_timestamp: Timestamp(server_ms),
            duration_ms: 1000,
            cluster_timecode_ms: producer_ms,
            tracks: configs
                .iter()
                .enumerate()
                .map(|(i, c)| FragmentTrack {
                    track: TrackNumber(i as u64 + 1),
                    codec_config: CodecConfigId(*c),
                    data_offset: 0,
                    data_len: 0,
                    samples: Vec::new(),
                })
                .collect(),
            tags: Vec::new(),
            media: MediaLocation {
                segment: 0,
                offset: 0,
                len: 0,
            },
        }
    }

    /// The flags of the fragment that follows a first one at (0, 0) on config 7.
    fn flags_after_first(next: NewFragment) -> u8 {
        let mut edge = StreamEdge::default();
        edge.advance(&frag(0, 0, &[7]));
        edge.advance(&next).1.flags
    }

    /// A fragment the ingest marks (LL-HLS listed parts of a failed one before it) gets every gap
    /// flag though its times continue; the first fragment of a stream still gets none.
    #[test]
    fn a_marked_fragment_begins_a_discontinuity() {
        let mut edge = StreamEdge::default();
        let mut first = frag(0, 0, &[1]);
        first.begins_discontinuity = true;
        assert_eq!(edge.advance(&first).1.flags, 0);
        let mut next = frag(1000, 1000, &[1]);
        next.begins_discontinuity = true;
        let gaps = Continuity::PRODUCER_GAP | Continuity::SERVER_GAP | Continuity::PAUSE;
        assert_eq!(edge.advance(&next).1.flags, gaps);
        assert_eq!(edge.advance(&frag(2000, 2000, &[1])).1.flags, 0);
        // What LL-HLS predicts for a fragment still arriving is what advance then stores.
        let ahead = StreamEdge::ending_at(Timestamp(3000), Timestamp(3000), vec![(1, 1)]);
        assert_eq!(
            ahead.flags_for(&[(1, 1)], Timestamp(3000), Timestamp(3000)),
            0
        );
        assert_eq!(
            edge.flags_for(&[(1, 2)], Timestamp(3000), Timestamp(3000)),
            ALL
        );
    }

    #[test]
    fn first_fragment_has_sequence_0_and_no_flags() {
        let mut edge = StreamEdge::default();
        assert_eq!(edge.next_sequence(), 0);
        // Whatever it looks like: there is nothing to compare it with.
        assert_eq!(edge.advance(&frag(123_456, -5, &[3, 4])), (0, C));
        assert_eq!(edge.next_sequence(), 1);
    }

    #[test]
    fn contiguous_fragments_have_no_flags() {
        assert_eq!(flags_after_first(frag(1000, 1000, &[7])), 0);
        // Up to GAP_MS either way is still contiguous.
        let gap = Continuity::GAP_MS;
        assert_eq!(flags_after_first(frag(1000 + gap, 1000 - gap, &[7])), 0);
    }

    #[test]
    fn producer_gap_only() {
        let gap = Continuity::GAP_MS + 1;
        assert_eq!(
            flags_after_first(frag(1000 + gap, 1000, &[7])),
            Continuity::PRODUCER_GAP
        );
        // Overlap counts as a gap as well (the start is before the previous end).
        assert_eq!(
            flags_after_first(frag(1000 - gap, 1000, &[7])),
            Continuity::PRODUCER_GAP
        );
    }

    #[test]
    fn server_gap_only() {
        let gap = Continuity::GAP_MS + 1;
        assert_eq!(
            flags_after_first(frag(1000, 1000 + gap, &[7])),
            Continuity::SERVER_GAP
        );
        assert_eq!(
            flags_after_first(frag(1000, 1000 - gap, &[7])),
            Continuity::SERVER_GAP
        );
    }

    #[test]
    fn pause_over_pause_ms_on_either_clock() {
        let pause = Continuity::PAUSE_MS + 1;
        assert_eq!(
            flags_after_first(frag(1000 + pause, 1000, &[7])),
            Continuity::PRODUCER_GAP | Continuity::PAUSE
        );
        assert_eq!(
            flags_after_first(frag(1000, 1000 + pause, &[7])),
            Continuity::SERVER_GAP | Continuity::PAUSE
        );
        // Exactly PAUSE_MS is a gap, not yet a pause.
        assert_eq!(
            flags_after_first(frag(1000 + Continuity::PAUSE_MS, 1000, &[7])),
            Continuity::PRODUCER_GAP
        );
    }

    #[test]
    fn codec_config_change_sets_every_flag() {
        // A new config id on the same track, with timestamps contiguous.
        assert_eq!(flags_after_first(frag(1000, 1000, &[8])), ALL);
        // A track added.
        assert_eq!(flags_after_first(frag(1000, 1000, &[7, 9])), ALL);
    }

    #[test]
    fn counters_count_flagged_fragments_and_sequence_is_gapless() {
        let mut edge = StreamEdge::default();
        let plan = [
            frag(0, 0, &[7]),
            frag(1000, 1000, &[7]), // contiguous
            frag(2100, 2000, &[7]), // producer gap
            frag(6000, 3000, &[7]), // producer pause
            frag(7000, 4000, &[8]), // codec change
            frag(8000, 5000, &[8]), // contiguous
            frag(9000, 6100, &[8]), // server gap
        ];
        let got: Vec<(u64, Continuity)> = plan.iter().map(|f| edge.advance(f)).collect();
        let sequences: Vec<u64> = got.iter().map(|g| g.0).collect();
        assert_eq!(sequences, [0, 1, 2, 3, 4, 5, 6]);
        let counts: Vec<[u64; 4]> = got.iter().map(|g| g.1.counts).collect();
        assert_eq!(
            counts,
            [
                [0, 0, 0, 0],
                [0, 0, 0, 0],
                [0, 1, 0, 0],
                [0, 2, 0, 1],
                [1, 3, 1, 2],
                [1, 3, 1, 2],
                [1, 3, 2, 2],
            ]
        );
        let last = got[6].1;
        assert_eq!(last.count(Continuity::SERVER_GAP), 2);
        assert!(last.has(Continuity::SERVER_GAP) && !last.has(Continuity::PAUSE));
    }

    /// The serde form is what existing SQLite catalogs hold in `stream.ingest_state`.
    #[test]
    fn serialized_form_is_the_stored_one() {
        let stored = r#"{"next_sequence":2,"producer_end_ms":3000,"server_end_ms":4000,"configs":[[1,7],[2,9]],"counts":[1,2,3,4]}"#;
        let edge: StreamEdge = serde_json::from_str(stored).unwrap();
        assert_eq!(serde_json::to_string(&edge).unwrap(), stored);
        assert_eq!(edge.next_sequence(), 2);
        let fresh = serde_json::to_string(&StreamEdge::default()).unwrap();
        assert_eq!(
            fresh,
            r#"{"next_sequence":0,"producer_end_ms":null,"server_end_ms":null,"configs":[],"counts":[0,0,0,0]}"#
        );
        // The edge continues from the stored state: the next fragment gets sequence 2.
        let mut edge = edge;
        assert_eq!(edge.advance(&frag(3000, 4000, &[7, 9])).0, 2);
    }

    proptest! {
        /// Over any run of fragments, sequences are 0, 1, 2, … and each counter equals the
        /// number of fragments so far that had its flag.
        #[test]
        fn sequence_is_gapless_and_counts_are_flag_totals(
            steps in prop::collection::vec(
                (-3000i64..5000, -3000i64..5000, 0u64..3000, 0i64..3, 1usize..3),
                1..60,
            ),
        ) {
            let mut edge = StreamEdge::default();
            let mut seen = [0u64; 4];
            let (mut producer_ms, mut server_ms) = (1_000_000i64, 2_000_000i64);
            for (i, (dp, ds, duration_ms, config, tracks)) in steps.into_iter().enumerate() {
                producer_ms += dp;
                server_ms += ds;
                let mut f = frag(producer_ms, server_ms, &vec![config; tracks]);
                f.duration_ms = duration_ms;
                let (sequence, c) = edge.advance(&f);
                prop_assert_eq!(sequence, i as u64);
                if i == 0 {
                    prop_assert_eq!(c.flags, 0);
                }
                for (bit, n) in seen.iter_mut().enumerate() {
                    if c.flags & (1 << bit) != 0 {
                        *n += 1;
                    }
                }
                prop_assert_eq!(c.counts, seen);
                // A codec change implies every flag; a pause implies a gap on some clock.
                if c.has(Continuity::CODEC_CHANGE) {
                    prop_assert_eq!(c.flags, ALL);
                }
                if c.has(Continuity::PAUSE) {
                    prop_assert!(c.has(Continuity::PRODUCER_GAP) || c.has(Continuity::SERVER_GAP));
                }
                prop_assert_eq!(edge.next_sequence(), i as u64 + 1);
            }
        }
    }
}
