//! The fixture a producer loops: read once with [`media::mkv::MkvReader`], re-emitted frame by frame the way the KVS
//! producer SDK writes (docs/wire.md#putmedia-body): unknown-size Segment and Clusters, 8-byte integers, ABSOLUTE
//! cluster timecodes in ms that move on by one fixture period each loop.

use bytes::Bytes;
use media::mkv::writer::{MasterSize, MkvWriter};
use media::mkv::{Event, MkvReader, ReaderLimits, Track};

/// Every timecode we write is in ms.
pub const TIMECODE_SCALE_NS: u64 = 1_000_000;

#[derive(Debug)]
pub struct FixtureFrame {
    /// Index into [`Fixture::cluster_timecodes_ms`].
    pub cluster: usize,
    /// This frame opens its cluster.
    pub starts_cluster: bool,
    /// Presentation time from the fixture's first cluster, ms.
    pub time_ms: u64,
    pub track: u64,
    pub keyframe: bool,
    pub data: Bytes,
}

#[derive(Debug)]
pub struct Fixture {
    pub tracks: Vec<Track>,
    pub cluster_timecodes_ms: Vec<u64>,
    /// In file order (decode order), which is also send order.
    pub frames: Vec<FixtureFrame>,
    /// How far timecodes move on per loop: the last frame's time plus its track's frame interval.
    pub period_ms: u64,
}

impl Fixture {
    pub fn parse(bytes: &[u8]) -> Result<Fixture, String> {
        let mut reader = MkvReader::new(ReaderLimits::default());
        reader.push(Bytes::copy_from_slice(bytes));
        let mut events = Vec::new();
        while let Some(event) = reader.next_event().map_err(|e| e.to_string())? {
            events.push(event);
        }
        while let Some(event) = reader.finish().map_err(|e| e.to_string())? {
            events.push(event);
        }
        let mut tracks = None;
        let mut scale_ns = TIMECODE_SCALE_NS;
        let mut cluster_timecodes_ms = Vec::new();
        let mut frames: Vec<FixtureFrame> = Vec::new();
        let mut cluster_ticks = 0u64;
        let mut opened = false;
        for event in events {
            match event {
                Event::Tracks(info) if tracks.is_none() => {
                    scale_ns = info.timecode_scale_ns;
                    tracks = Some(info.tracks);
                }
                Event::ClusterStart { timecode, .. } => {
                    cluster_ticks = timecode;
                    cluster_timecodes_ms.push(timecode * scale_ns / 1_000_000);
                    opened = true;
                }
                Event::Frame(frame) => {
                    let ticks = cluster_ticks as i64 + i64::from(frame.relative_timecode);
                    frames.push(FixtureFrame {
                        cluster: cluster_timecodes_ms.len().saturating_sub(1),
                        starts_cluster: std::mem::take(&mut opened),
                        time_ms: (ticks.max(0) as u64) * scale_ns / 1_000_000,
                        track: frame.track.0,
                        keyframe: frame.keyframe,
                        data: frame.data,
                    });
                }
                _ => {}
            }
        }
        let tracks = tracks.ok_or("no Tracks element")?;
        if frames.is_empty() || !frames[0].starts_cluster {
            return Err("no frames in clusters".into());
        }
        // Period: the latest frame end, a frame end being its start plus the gap to the previous frame of its track.
        let mut last_by_track = std::collections::HashMap::new();
        let mut period_ms = 0;
        for frame in &frames {
            let gap = last_by_track
                .insert(frame.track, frame.time_ms)
                .map_or(0, |previous| frame.time_ms.saturating_sub(previous));
            period_ms = period_ms.max(frame.time_ms + gap);
        }
        Ok(Fixture {
            tracks,
            cluster_timecodes_ms,
            frames,
            period_ms: period_ms.max(1),
        })
    }

    /// EBML header, unknown-size Segment, Info and Tracks: the first bytes of every PutMedia body.
    pub fn header(&self) -> Bytes {
        let mut writer = MkvWriter::kvs();
        writer
            .ebml_header("matroska")
            .start_segment(MasterSize::Unknown)
            .info(TIMECODE_SCALE_NS)
            .tracks(&self.tracks);
        Bytes::copy_from_slice(writer.as_bytes())
    }

    /// The bytes of `frame` in loop `lap` of a body whose timecodes start at `start_ms`; the cluster header (and its
    /// timecode) first when the frame opens one.
    pub fn frame_bytes(
        &self,
        frame: &FixtureFrame,
        lap: u64,
        start_ms: u64,
    ) -> (Bytes, Option<u64>) {
        let cluster_ms = self.cluster_timecodes_ms[frame.cluster];
        let relative = (frame.time_ms as i64 - cluster_ms as i64)
            .clamp(i16::MIN.into(), i16::MAX.into()) as i16;
        let mut writer = MkvWriter::kvs();
        let cluster_timecode = frame
            .starts_cluster
            .then(|| start_ms + lap * self.period_ms + cluster_ms);
        if let Some(timecode) = cluster_timecode {
            writer.start_cluster(timecode, MasterSize::Unknown);
        }
        writer.simple_block(frame.track, relative, frame.keyframe, &frame.data);
        (Bytes::copy_from_slice(writer.as_bytes()), cluster_timecode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Fixture {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/h264_aac.mkv"
        );
        Fixture::parse(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn reads_the_h264_aac_fixture() {
        let fixture = fixture();
        assert_eq!(fixture.cluster_timecodes_ms, [0, 981, 1984, 2987]);
        assert_eq!(fixture.frames.len(), 120 + 188);
        assert_eq!(
            fixture.frames.iter().filter(|f| f.starts_cluster).count(),
            4
        );
        assert!(
            (4000..=4030).contains(&fixture.period_ms),
            "{}",
            fixture.period_ms
        );
    }

    #[test]
    fn looped_bytes_parse_back_with_moved_timecodes() {
        let fixture = fixture();
        let mut body = fixture.header().to_vec();
        let mut timecodes = Vec::new();
        for lap in 0..2 {
            for frame in &fixture.frames {
                let (bytes, timecode) = fixture.frame_bytes(frame, lap, 1_700_000_000_000);
                body.extend_from_slice(&bytes);
                timecodes.extend(timecode);
            }
        }
        let looped = Fixture::parse(&body).unwrap();
        assert_eq!(looped.frames.len(), 2 * fixture.frames.len());
        assert_eq!(looped.cluster_timecodes_ms, timecodes);
        assert_eq!(timecodes[0], 1_700_000_000_000);
        assert_eq!(timecodes[4] - timecodes[0], fixture.period_ms);
    }
}
