//! `media::codec` against real codec private data: the fixtures' CodecPrivate (read with the
//! MKV reader), cross-checked with ffprobe when it is installed; and random / truncated input
//! never panics.

use bytes::Bytes;
use media::codec::{AacConfig, AvcConfig, CodecError, HevcConfig};
use media::mkv::{Event, MkvReader, ReaderLimits, Track};
use proptest::prelude::*;
use std::path::PathBuf;
use std::process::Command;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// Every `Tracks` event of a fixture, in order (one per Segment).
fn fixture_tracks(name: &str) -> Option<Vec<Vec<Track>>> {
    let bytes = std::fs::read(fixture_path(name))
        .unwrap_or_else(|e| panic!("fixture {name} (committed in tests/fixtures): {e}"));
    let mut reader = MkvReader::new(ReaderLimits::default());
    reader.push(Bytes::from(bytes));
    let mut out = Vec::new();
    while let Some(event) = reader.next_event().expect("fixture parses") {
        if let Event::Tracks(info) = event {
            out.push(info.tracks);
        }
    }
    while let Some(event) = reader.finish().expect("fixture parses") {
        if let Event::Tracks(info) = event {
            out.push(info.tracks);
        }
    }
    Some(out)
}

fn cpd<'a>(tracks: &'a [Track], codec_id: &str) -> &'a [u8] {
    tracks
        .iter()
        .find(|t| t.codec_id == codec_id)
        .and_then(|t| t.codec_private.as_deref())
        .unwrap_or_else(|| panic!("no {codec_id} CodecPrivate"))
}

/// `key=value` pairs of `ffprobe -show_streams` for one stream, or None without ffprobe.
fn ffprobe_stream(name: &str, stream: &str) -> Option<Vec<(String, String)>> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_streams",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(fixture_path(name))
        .output();
    let out = out.unwrap_or_else(|e| {
        panic!("ffprobe is needed for this cross-check (scripts/test.sh installs ffmpeg): {e}")
    });
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn field<'a>(probe: &'a [(String, String)], key: &str) -> &'a str {
    probe
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("ffprobe has no {key}"))
}

/// H.264 profile names as ffprobe prints them → profile_idc.
fn h264_profile_idc(name: &str) -> u8 {
    match name {
        "Baseline" | "Constrained Baseline" => 66,
        "Main" => 77,
        "High" => 100,
        other => panic!("unexpected profile {other}"),
    }
}

fn check_avc_against_ffprobe(fixture: &str, config: &AvcConfig) {
    if let Some(probe) = ffprobe_stream(fixture, "v:0") {
        assert_eq!(field(&probe, "codec_name"), "h264");
        assert_eq!(
            h264_profile_idc(field(&probe, "profile")),
            config.profile_idc,
            "{fixture}"
        );
        assert_eq!(
            field(&probe, "level"),
            config.level_idc.to_string(),
            "{fixture}"
        );
        assert_eq!(
            field(&probe, "width"),
            config.width.to_string(),
            "{fixture}"
        );
        assert_eq!(
            field(&probe, "height"),
            config.height.to_string(),
            "{fixture}"
        );
        assert_eq!(
            field(&probe, "nal_length_size"),
            config.nal_length_size.to_string(),
            "{fixture}"
        );
    }
}

fn check_aac_against_ffprobe(fixture: &str, stream: &str, config: &AacConfig) {
    if let Some(probe) = ffprobe_stream(fixture, stream) {
        assert_eq!(field(&probe, "codec_name"), "aac");
        assert_eq!(field(&probe, "profile"), "LC");
        assert_eq!(
            field(&probe, "sample_rate"),
            config.sample_rate.to_string(),
            "{fixture}"
        );
        assert_eq!(
            field(&probe, "channels"),
            config.channels.to_string(),
            "{fixture}"
        );
    }
}

#[test]
fn h264_fixtures() {
    for fixture in ["h264_aac.mkv", "h264_aac_bframes.mkv"] {
        let Some(segments) = fixture_tracks(fixture) else {
            return;
        };
        let config = AvcConfig::parse(cpd(&segments[0], "V_MPEG4/ISO/AVC")).unwrap();
        // libx264 High profile, level 1.3, 320x240, 4-byte NAL lengths.
        assert_eq!(config.codec_string(), "avc1.64000d", "{fixture}");
        assert_eq!((config.width, config.height), (320, 240));
        assert_eq!(config.nal_length_size, 4);
        assert_eq!((config.sps.len(), config.pps.len()), (1, 1));
        check_avc_against_ffprobe(fixture, &config);
    }
}

#[test]
fn h264_resolution_change_has_two_configs() {
    let Some(segments) = fixture_tracks("h264_res_change.mkv") else {
        return;
    };
    assert_eq!(segments.len(), 2);
    let first = AvcConfig::parse(cpd(&segments[0], "V_MPEG4/ISO/AVC")).unwrap();
    let second = AvcConfig::parse(cpd(&segments[1], "V_MPEG4/ISO/AVC")).unwrap();
    assert_eq!((first.width, first.height), (320, 240));
    // 640x360 = 40x23 macroblocks (368 lines) cropped by 8: exercises frame cropping.
    assert_eq!((second.width, second.height), (640, 360));
    assert_eq!(first.codec_string(), "avc1.64000d");
    assert_eq!(second.codec_string(), "avc1.64001e");
    check_avc_against_ffprobe("h264_res_change.mkv", &first);
}

#[test]
fn h265_fixture() {
    let Some(segments) = fixture_tracks("h265.mkv") else {
        return;
    };
    let record = cpd(&segments[0], "V_MPEGH/ISO/HEVC");
    let config = HevcConfig::parse(record).unwrap();
    // Main profile (1), compatibility flags 1 and 2 (0x60000000 → reversed 0x6), Main tier,
    // level 2 (60), constraint byte 0x90 (progressive_source + frame_only).
    assert_eq!(config.codec_string(), "hvc1.1.6.L60.90");
    assert_eq!((config.width, config.height), (320, 240));
    assert_eq!(config.nal_length_size, 4);
    assert_eq!(
        (config.vps.len(), config.sps.len(), config.pps.len()),
        (1, 1, 1)
    );
    if let Some(probe) = ffprobe_stream("h265.mkv", "v:0") {
        assert_eq!(field(&probe, "codec_name"), "hevc");
        assert_eq!(field(&probe, "profile"), "Main");
        assert_eq!(field(&probe, "level"), config.general_level_idc.to_string());
        assert_eq!(field(&probe, "width"), config.width.to_string());
        assert_eq!(field(&probe, "height"), config.height.to_string());
    }
}

#[test]
fn aac_fixtures() {
    for (fixture, codec_stream) in [
        ("h264_aac.mkv", "a:0"),
        ("aac_only.mkv", "a:0"),
        ("h264_aac_bframes.mkv", "a:0"),
    ] {
        let Some(segments) = fixture_tracks(fixture) else {
            return;
        };
        let config = AacConfig::parse(cpd(&segments[0], "A_AAC")).unwrap();
        assert_eq!(config.codec_string(), "mp4a.40.2", "{fixture}");
        assert_eq!(
            (config.sample_rate, config.channels, config.frame_length),
            (48000, 2, 1024)
        );
        check_aac_against_ffprobe(fixture, codec_stream, &config);
    }
}

#[test]
fn contract_d1_example() {
    let record: Vec<u8> = (0..26)
        .map(|i| {
            u8::from_str_radix(
                &"014d002affe1000b674d002a95a81e0089f95001000468ee3c80"[2 * i..2 * i + 2],
                16,
            )
            .unwrap()
        })
        .collect();
    let config = AvcConfig::parse(&record).unwrap();
    assert_eq!(config.codec_string(), "avc1.4d002a");
    assert_eq!((config.width, config.height), (1920, 1080));
}

#[test]
fn wrong_kinds_of_record_are_errors_not_panics() {
    let Some(segments) = fixture_tracks("h264_aac.mkv") else {
        return;
    };
    let avcc = cpd(&segments[0], "V_MPEG4/ISO/AVC");
    let asc = cpd(&segments[0], "A_AAC");
    assert!(HevcConfig::parse(avcc).is_err());
    assert!(AvcConfig::parse(asc).is_err());
    assert!(matches!(
        AvcConfig::parse(&[]),
        Err(CodecError::Truncated { .. })
    ));
    let mut bad_version = avcc.to_vec();
    bad_version[0] = 2;
    assert!(matches!(
        AvcConfig::parse(&bad_version),
        Err(CodecError::Invalid { .. })
    ));
}

#[test]
fn every_truncation_of_real_records_is_an_error() {
    let Some(segments) = fixture_tracks("h265.mkv") else {
        return;
    };
    let hvcc = cpd(&segments[0], "V_MPEGH/ISO/HEVC").to_vec();
    for len in 0..hvcc.len() {
        // The last arrays may be SEI, whose loss is harmless only if the SPS is complete: a
        // prefix must either fail or describe the same picture.
        match HevcConfig::parse(&hvcc[..len]) {
            Err(_) => {}
            Ok(c) => panic!("prefix {len} parsed: {c:?}"),
        }
    }
    let Some(segments) = fixture_tracks("h264_aac.mkv") else {
        return;
    };
    let avcc = cpd(&segments[0], "V_MPEG4/ISO/AVC").to_vec();
    let config = AvcConfig::parse(&avcc).unwrap();
    // High-profile records end with an optional chroma_format / bit depth extension (ignored):
    // every prefix shorter than the parameter sets fails, every longer one parses the same.
    let sets_end = 6 + 2 + config.sps[0].len() + 1 + 2 + config.pps[0].len();
    assert!(
        sets_end < avcc.len(),
        "the fixture has the High-profile extension"
    );
    for len in 0..avcc.len() {
        match AvcConfig::parse(&avcc[..len]) {
            Err(_) => assert!(len < sets_end, "avcC prefix {len}"),
            Ok(c) => assert!(len >= sets_end && c == config, "avcC prefix {len}"),
        }
    }
    assert!(AacConfig::parse(&[0x11]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = AvcConfig::parse(&data);
        let _ = HevcConfig::parse(&data);
        let _ = AacConfig::parse(&data);
    }

    /// Random bytes behind a valid record header reach the SPS parsers.
    #[test]
    fn random_sps_never_panics(sps in proptest::collection::vec(any::<u8>(), 0..120), hevc in any::<bool>()) {
        if hevc {
            let mut record = vec![1u8, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 60, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0, 0x0f, 1, 0x21, 0, 1];
            let mut nal = vec![0x42, 0x01];
            nal.extend_from_slice(&sps);
            record.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            record.extend_from_slice(&nal);
            let _ = HevcConfig::parse(&record);
        } else {
            let mut record = vec![1u8, 100, 0, 13, 0xff, 0xe1];
            let mut nal = vec![0x67];
            nal.extend_from_slice(&sps);
            record.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            record.extend_from_slice(&nal);
            record.push(0);
            let _ = AvcConfig::parse(&record);
        }
    }

    /// Bit flips in real records give a result or an error, never a panic.
    #[test]
    fn mutated_real_records_never_panic(index in any::<prop::sample::Index>(), xor in 1u8..=255, which in 0usize..3) {
        static RECORDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        let records = RECORDS.get_or_init(|| {
            let mut v = Vec::new();
            if let Some(s) = fixture_tracks("h264_aac.mkv") {
                v.push(cpd(&s[0], "V_MPEG4/ISO/AVC").to_vec());
                v.push(cpd(&s[0], "A_AAC").to_vec());
            }
            if let Some(s) = fixture_tracks("h265.mkv") {
                v.push(cpd(&s[0], "V_MPEGH/ISO/HEVC").to_vec());
            }
            v
        });
        if let Some(record) = records.get(which) {
            let mut data = record.clone();
            let i = index.index(data.len());
            data[i] ^= xor;
            let _ = AvcConfig::parse(&data);
            let _ = HevcConfig::parse(&data);
            let _ = AacConfig::parse(&data);
        }
    }
}
