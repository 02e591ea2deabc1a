//! Splits the outgoing MKV byte stream at cluster boundaries so the sender can pace clusters in real time and
//! note when each cluster's last byte went out. Pure: chunks in, [`BodyStep`]s out.
//!
//! Bytes are released only once the reader has classified them (up to [`MkvReader::position`]), and never past
//! the end of the last element outside a cluster (`Tracks`, `Tags`, a `ClusterEnd`) until the next `ClusterStart`
//! is reported, so a cluster's first byte is never sent before its boundary step. If the MKV does not parse, every byte is still sent, unpaced: the server judges.

use bytes::Bytes;
use media::mkv::{Event, MkvError, MkvReader, ReaderLimits, DEFAULT_TIMECODE_SCALE_NS};
use std::collections::VecDeque;

/// What to do next with the body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BodyStep {
    /// Send these bytes.
    Bytes(Bytes),
    /// A cluster begins with the next byte: the previous cluster is complete; pace before going on.
    ClusterStart {
        timecode: u64,
        timecode_scale_ns: u64,
    },
}

#[derive(Debug)]
pub(crate) struct BodyPlanner {
    /// `None` once the input stopped parsing (then bytes flow through unpaced).
    reader: Option<MkvReader>,
    parse_error: Option<MkvError>,
    /// Unsent bytes, starting at stream offset `pending_offset`.
    pending: VecDeque<Bytes>,
    pending_offset: u64,
    bytes_pushed: u64,
    timecode_scale_ns: u64,
    /// Offset of a `ClusterEnd` not yet followed by its `ClusterStart`: bytes from here wait for it.
    held_at: Option<u64>,
}

impl Default for BodyPlanner {
    fn default() -> Self {
        Self {
            reader: Some(MkvReader::new(ReaderLimits::default())),
            parse_error: None,
            pending: VecDeque::new(),
            pending_offset: 0,
            bytes_pushed: 0,
            timecode_scale_ns: DEFAULT_TIMECODE_SCALE_NS,
            held_at: None,
        }
    }
}

impl BodyPlanner {
    /// The error that stopped parsing, if any.
    pub(crate) fn parse_error(&self) -> Option<&MkvError> {
        self.parse_error.as_ref()
    }

    /// Takes the next chunk of input; returns what can be sent now.
    pub(crate) fn push(&mut self, chunk: Bytes) -> Vec<BodyStep> {
        self.bytes_pushed += chunk.len() as u64;
        self.pending.push_back(chunk.clone());
        let mut steps = Vec::new();
        // Taken out while events are handled (they need `self`); put back unless parsing failed.
        if let Some(mut reader) = self.reader.take() {
            reader.push(chunk);
            loop {
                match reader.next_event() {
                    // Outside a cluster the next level-1 element may be a Cluster whose header the reader
                    // consumes before its Timecode (and so its ClusterStart) is known: hold bytes from here.
                    Ok(Some(Event::Tracks(info))) => {
                        self.timecode_scale_ns = info.timecode_scale_ns;
                        self.held_at = Some(reader.position());
                    }
                    Ok(Some(Event::SegmentStart { .. } | Event::Tags(_))) => {
                        self.held_at = Some(reader.position())
                    }
                    Ok(Some(Event::ClusterEnd { offset })) => self.held_at = Some(offset),
                    Ok(Some(Event::ClusterStart { timecode, offset })) => {
                        self.held_at = None;
                        self.release_until(offset, &mut steps);
                        steps.push(BodyStep::ClusterStart {
                            timecode,
                            timecode_scale_ns: self.timecode_scale_ns,
                        });
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(error) => {
                        self.parse_error = Some(error);
                        self.held_at = None;
                        break;
                    }
                }
            }
            if self.parse_error.is_none() {
                self.reader = Some(reader);
            }
        }
        let classified_until = match &self.reader {
            Some(reader) => reader.position().min(self.held_at.unwrap_or(u64::MAX)),
            None => self.bytes_pushed,
        };
        self.release_until(classified_until, &mut steps);
        steps
    }

    /// End of input: everything still pending.
    pub(crate) fn finish(&mut self) -> Vec<BodyStep> {
        let mut steps = Vec::new();
        self.release_until(self.bytes_pushed, &mut steps);
        steps
    }

    /// Moves pending bytes up to stream offset `end` into `steps` (nothing if `end` is behind what was sent).
    fn release_until(&mut self, end: u64, steps: &mut Vec<BodyStep>) {
        while self.pending_offset < end {
            let Some(front) = self.pending.front_mut() else {
                return;
            };
            let wanted = usize::try_from(end - self.pending_offset).unwrap_or(usize::MAX);
            let piece = if wanted >= front.len() {
                self.pending.pop_front().unwrap_or_default()
            } else {
                front.split_to(wanted)
            };
            self.pending_offset += piece.len() as u64;
            if !piece.is_empty() {
                steps.push(BodyStep::Bytes(piece));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One EBML element: ID bytes, then a size (8-byte form, or unknown size `0x01FFFFFFFFFFFFFF`), then data.
    fn element(id: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = id.to_vec();
        out.push(0x01);
        out.extend_from_slice(&(data.len() as u64).to_be_bytes()[1..]);
        out.extend_from_slice(data);
        out
    }

    fn unknown_size(id: &[u8]) -> Vec<u8> {
        let mut out = id.to_vec();
        out.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        out
    }

    fn uint(id: &[u8], value: u64) -> Vec<u8> {
        element(id, &value.to_be_bytes())
    }

    /// A KVS-style MKV (docs/wire.md#putmedia-body): unknown-size Segment and Clusters, one video track, one key frame
    /// per cluster. Returns the bytes and the offset of each Cluster.
    pub(crate) fn sample_mkv(cluster_timecodes: &[u64], frame_bytes: usize) -> (Vec<u8>, Vec<u64>) {
        let mut out = element(
            &[0x1A, 0x45, 0xDF, 0xA3],
            &[uint(&[0x42, 0x86], 1), element(&[0x42, 0x82], b"matroska")].concat(),
        );
        out.extend(unknown_size(&[0x18, 0x53, 0x80, 0x67]));
        out.extend(element(
            &[0x15, 0x49, 0xA9, 0x66],
            &uint(&[0x2A, 0xD7, 0xB1], 1_000_000),
        ));
        let track = [
            uint(&[0xD7], 1),
            uint(&[0x73, 0xC5], 1),
            uint(&[0x83], 1),
            element(&[0x86], b"V_MPEG4/ISO/AVC"),
        ]
        .concat();
        out.extend(element(
            &[0x16, 0x54, 0xAE, 0x6B],
            &element(&[0xAE], &track),
        ));
        let mut offsets = Vec::new();
        for &timecode in cluster_timecodes {
            offsets.push(out.len() as u64);
            out.extend(unknown_size(&[0x1F, 0x43, 0xB6, 0x75]));
            out.extend(uint(&[0xE7], timecode));
            let mut block = vec![0x81, 0x00, 0x00, 0x80];
            block.resize(4 + frame_bytes, 0xAB);
            out.extend(element(&[0xA3], &block));
        }
        (out, offsets)
    }

    fn run(planner: &mut BodyPlanner, input: &[u8], chunk_size: usize) -> Vec<BodyStep> {
        let mut steps = Vec::new();
        for chunk in input.chunks(chunk_size) {
            steps.extend(planner.push(Bytes::copy_from_slice(chunk)));
        }
        steps.extend(planner.finish());
        steps
    }

    /// (offset at which each ClusterStart step came, its timecode), and the concatenated bytes.
    fn boundaries(steps: &[BodyStep]) -> (Vec<(u64, u64)>, Vec<u8>) {
        let mut sent = Vec::new();
        let mut found = Vec::new();
        for step in steps {
            match step {
                BodyStep::Bytes(bytes) => sent.extend_from_slice(bytes),
                BodyStep::ClusterStart {
                    timecode,
                    timecode_scale_ns,
                } => {
                    assert_eq!(*timecode_scale_ns, 1_000_000);
                    found.push((sent.len() as u64, *timecode));
                }
            }
        }
        (found, sent)
    }

    #[test]
    fn splits_exactly_at_cluster_starts_for_every_chunk_size() {
        let timecodes = [0, 2000, 4000, 6000];
        let (mkv, offsets) = sample_mkv(&timecodes, 300);
        let expected: Vec<(u64, u64)> = offsets.iter().copied().zip(timecodes).collect();
        for chunk_size in [1, 2, 7, 64, 1000, mkv.len()] {
            let mut planner = BodyPlanner::default();
            let (found, sent) = boundaries(&run(&mut planner, &mkv, chunk_size));
            assert_eq!(found, expected, "chunk size {chunk_size}");
            assert_eq!(sent, mkv, "chunk size {chunk_size}");
            assert!(planner.parse_error().is_none());
        }
    }

    #[test]
    fn garbage_is_still_sent_whole_without_boundaries() {
        let garbage: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut planner = BodyPlanner::default();
        let (found, sent) = boundaries(&run(&mut planner, &garbage, 64));
        assert!(found.is_empty());
        assert_eq!(sent, garbage);
    }

    #[test]
    fn bytes_after_a_parse_error_still_flow() {
        let (mut mkv, offsets) = sample_mkv(&[0, 1000], 100);
        mkv.extend_from_slice(&[0xFF; 300]); // not an element
        let mut planner = BodyPlanner::default();
        let (found, sent) = boundaries(&run(&mut planner, &mkv, 50));
        assert_eq!(
            found.iter().map(|(offset, _)| *offset).collect::<Vec<_>>(),
            offsets
        );
        assert_eq!(sent, mkv);
    }
}
