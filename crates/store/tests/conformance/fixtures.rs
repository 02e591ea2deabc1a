//! Fixtures of the store tests: streams, codec configs, fragments and their bytes, and [`Feed`],
//! which numbers fragments as an ingest connection does. Shared by the conformance suite and the
//! embedded-only tests.

use bytes::Bytes;
use media::TrackNumber;
use std::collections::BTreeMap;
use store::*;

/// Realistic epoch milliseconds, so fragment numbers have their real width (past `u64`).
pub const T0: i64 = 1_760_000_000_000;

pub fn new_stream(name: &str) -> NewStream {
    NewStream {
        name: name.into(),
        arn: format!("arn:aws:kinesisvideo:us-east-1:000000000000:stream/{name}/1"),
        device_name: Some("camera-1".into()),
        media_type: Some("video/h264".into()),
        kms_key_id: "arn:aws:kms:us-east-1:000000000000:alias/aws/kinesisvideo".into(),
        version: "v1".into(),
        creation_time: Timestamp(T0),
        data_retention_hours: 24,
        storage_tier: "HOT".into(),
        tags: BTreeMap::from([("site".to_string(), "lobby".to_string())]),
    }
}

pub fn video(track: u64, cpd: &[u8]) -> CodecConfig {
    CodecConfig {
        track: TrackNumber(track),
        track_type: 1,
        codec_id: "V_MPEG4/ISO/AVC".into(),
        codec_private: Bytes::copy_from_slice(cpd),
        track_name: Some("video".into()),
        pixel_width: Some(1280),
        pixel_height: Some(720),
        sampling_frequency: None,
        channels: None,
    }
}

pub fn audio(track: u64, cpd: &[u8]) -> CodecConfig {
    CodecConfig {
        track: TrackNumber(track),
        track_type: 2,
        codec_id: "A_AAC".into(),
        codec_private: Bytes::copy_from_slice(cpd),
        track_name: None,
        pixel_width: None,
        pixel_height: None,
        sampling_frequency: Some(48_000.0),
        channels: Some(2),
    }
}

/// The id [`Catalog::codec_config_for`] gives `config` on `stream`.
pub async fn config_id(
    catalog: &dyn Catalog,
    stream: StreamId,
    config: CodecConfig,
) -> CodecConfigId {
    catalog.codec_config_for(stream, &config).await.unwrap()
}

/// A new stream with a video config on track 1 and an audio config on track 2.
pub async fn video_and_audio(
    catalog: &dyn Catalog,
    name: &str,
) -> (StreamRecord, CodecConfigId, CodecConfigId) {
    let s = catalog.create_stream(new_stream(name)).await.unwrap();
    let v = catalog.codec_config_for(s.id, &video(1, b"\x01v")).await;
    let a = catalog.codec_config_for(s.id, &audio(2, b"\x12\x10")).await;
    (s, v.unwrap(), a.unwrap())
}

/// `len` bytes that differ from those of another `seed` and along their length.
pub fn payload(seed: u8, len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed as u32 * 97) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// One track of a fragment: track number, codec config, the track's bytes.
pub type Track = (u64, CodecConfigId, Bytes);

/// A one-second fragment whose tracks are `tracks` (track number, config, bytes) one after the
/// other; each track's bytes are two samples (a key frame, then a frame with a negative
/// presentation offset) and two appended parts.
pub fn fragment(
    stream: StreamId,
    number: FragmentNumber,
    producer_ms: i64,
    server_ms: i64,
    tracks: &[Track],
) -> PendingFragment {
    let mut parts = Vec::new();
    let mut rows = Vec::new();
    let mut offset = 0;
    for (track, config, bytes) in tracks {
        let first = bytes.len() / 2;
        parts.push(bytes.slice(..first));
        parts.push(bytes.slice(first..));
        rows.push(FragmentTrack {
            track: TrackNumber(*track),
            codec_config: *config,
            data_offset: offset,
            data_len: bytes.len() as u64,
            samples: vec![
                SampleEntry {
                    pts_offset_ns: 0,
                    duration_ns: Some(500_000_000),
                    size: first as u32,
                    keyframe: true,
                },
                SampleEntry {
                    pts_offset_ns: -33_000_000,
                    duration_ns: None,
                    size: (bytes.len() - first) as u32,
                    keyframe: false,
                },
            ],
        });
        offset += bytes.len() as u64;
    }
    PendingFragment {
        parts,
        row: NewFragment {
            writer_epoch: None,
            begins_discontinuity: false,
            stream,
            number,
            producer_timestamp: Timestamp(producer_ms),
            server_timestamp: Timestamp(server_ms),
            duration_ms: 1000,
            // As a RELATIVE producer sends it: an offset from its start, not the timestamp.
            cluster_timecode_ms: producer_ms.rem_euclid(1_000_000),
            tracks: rows,
            tags: vec![
                ("AWS_KINESISVIDEO_CONTINUOUS".into(), "1".into()),
                ("note".into(), "é ✓".into()),
            ],
            // Filled in by the archive.
            media: MediaLocation {
                segment: 0,
                offset: 0,
                len: 0,
            },
        },
    }
}

/// A stream with one video config, fed through an [`Archive`] as an ingest connection would:
/// numbers from [`FragmentNumber::next`].
pub struct Feed {
    pub stream: StreamId,
    pub config: CodecConfigId,
    pub last: Option<FragmentNumber>,
}

impl Feed {
    pub async fn new(catalog: &dyn Catalog, name: &str) -> Feed {
        let s = catalog.create_stream(new_stream(name)).await.unwrap();
        let config = catalog
            .codec_config_for(s.id, &video(1, b"\x01avc-a"))
            .await
            .unwrap();
        Feed {
            stream: s.id,
            config,
            last: catalog.last_fragment_number(s.id).await.unwrap(),
        }
    }

    /// The next fragment at these timestamps, one video track of `data`.
    pub fn next(&mut self, producer_ms: i64, server_ms: i64, data: Bytes) -> PendingFragment {
        let number = FragmentNumber::next(self.last, Timestamp(server_ms));
        self.last = Some(number);
        fragment(
            self.stream,
            number,
            producer_ms,
            server_ms,
            &[(1, self.config, data)],
        )
    }

    pub async fn put(
        &mut self,
        archive: &Archive,
        producer_ms: i64,
        server_ms: i64,
        data: Bytes,
    ) -> FragmentNumber {
        let f = self.next(producer_ms, server_ms, data);
        let number = archive.persist(f).await.unwrap();
        assert_eq!(
            Some(number),
            self.last,
            "the archive returns the number it was given"
        );
        number
    }
}

/// Every fragment of `stream` by `kind` (up to 100).
pub fn whole_range(stream: StreamId, kind: TimestampKind) -> FragmentQuery {
    FragmentQuery {
        stream,
        kind,
        start: Timestamp(0),
        end: Timestamp(i64::MAX),
        after: None,
        limit: 100,
    }
}

pub fn numbers(records: &[FragmentRecord]) -> Vec<FragmentNumber> {
    records.iter().map(|f| f.number).collect()
}

pub fn names(records: &[StreamRecord]) -> Vec<&str> {
    records.iter().map(|s| s.name.as_str()).collect()
}

pub async fn read_all(media: &dyn MediaStore, f: &FragmentRecord) -> Bytes {
    media.read(f.stream, f.media, 0..f.media.len).await.unwrap()
}
