//! `media::ts` golden bytes and properties: PAT and PMT packets byte for byte (the sections equal
//! what ffmpeg's mpegts muxer writes for the same PIDs, CRC included), a whole small segment laid
//! out by hand, a pinned digest per [`FORMAT_VERSION`], and a property test: any sample list
//! muxes into 188-byte packets with valid continuity counters whose PES packets give back the
//! samples (Annex B / ADTS removed) with the timeline's PTS and DTS modulo 2^33.

use media::codec::{AacConfig, AvcConfig};
use media::timeline::{audio_timing, video_timing, StoredSample, TrackTiming};
use media::ts::{
    mux_segment, segment_len, write_pat, write_pmt, TsCodec, TsError, TsTrack, FORMAT_VERSION,
    PACKET_LEN, PID_AUDIO, PID_VIDEO, STREAM_TYPE_AAC_ADTS, STREAM_TYPE_H264,
};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// avcC of tests/fixtures/h264_aac.mkv (High 1.3, 320x240): SPS 23 bytes, PPS 4 bytes.
const AVCC: &str =
    "0164000dffe100176764000dacb40a0fd80880000003008000001e078a155001000468ef0fcbfdf8f800";
const SPS: &str = "6764000dacb40a0fd80880000003008000001e078a1550";
const PPS: &str = "68ef0fcb";
/// AudioSpecificConfig: AAC-LC, 48 kHz, stereo.
const ASC: [u8; 2] = [0x11, 0x90];

/// SHA-256 of the golden segment. Pinned to [`FORMAT_VERSION`] 1: if it changes, the bytes
/// served for the same input changed, so FORMAT_VERSION (in every cache key) must be bumped.
const GOLDEN_SEGMENT_SHA256: &str =
    "ba76d5d3ba5e3a8fd16beb4b7233d6b5a3108f52e1fdf785a3b0b226a3001d14";

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A one-section PSI packet: header with PUSI and an adaptation field holding only the
/// discontinuity_indicator, pointer_field 0, the section, 0xFF to the end.
fn psi_packet(pid: u16, section: &[u8]) -> Vec<u8> {
    let mut p = vec![
        0x47,
        0x40 | (pid >> 8) as u8,
        pid as u8,
        0x30,
        0x01,
        0x80,
        0x00,
    ];
    p.extend_from_slice(section);
    p.resize(188, 0xff);
    p
}

#[test]
fn pat_and_pmt_match_ffmpegs_sections() {
    // ffmpeg -f mpegts (5.1): the same sections, CRC_32 included (see the module doc).
    let pat_section = hex("00b00d0001c100000001f0002ab104b2");
    let pmt_section = hex("02b0170001c10000e100f0001be100f0000fe101f0002f44b99b");
    let mut out = Vec::new();
    write_pat(&mut out);
    assert_eq!(out, psi_packet(0, &pat_section));
    out.clear();
    write_pmt(
        &mut out,
        &[
            (STREAM_TYPE_H264, PID_VIDEO),
            (STREAM_TYPE_AAC_ADTS, PID_AUDIO),
        ],
    );
    assert_eq!(out, psi_packet(0x1000, &pmt_section));
    // Audio only: PCR_PID is the audio PID; one stream entry. CRC by media::ts::crc32_mpeg2,
    // checked by the receiver rule: the CRC over the whole section is 0.
    out.clear();
    write_pmt(&mut out, &[(STREAM_TYPE_AAC_ADTS, PID_AUDIO)]);
    let section = &out[7..7 + 3 + 0x12];
    assert_eq!(
        &section[..section.len() - 4],
        hex("02b0120001c10000e101f0000fe101f000")
    );
    assert_eq!(media::ts::crc32_mpeg2(section), 0);
}

fn avc() -> AvcConfig {
    AvcConfig::parse(&hex(AVCC)).unwrap()
}

fn aac() -> AacConfig {
    AacConfig::parse(&ASC).unwrap()
}

/// One 10-byte IDR slice at t = 1 s (90 kHz) and two 4-byte AAC frames at 48 kHz from t = 1 s.
fn golden_segment() -> Vec<u8> {
    let video = video_timing(
        1_000_000_000,
        &[StoredSample {
            pts_offset_ns: 0,
            duration_ns: Some(33_333_333),
            size: 14,
            keyframe: true,
        }],
        90_000,
        None,
    )
    .unwrap();
    let audio = audio_timing(
        1_000_000_000,
        &[StoredSample {
            pts_offset_ns: 0,
            duration_ns: None,
            size: 4,
            keyframe: true,
        }; 2],
        48_000,
        1024,
    )
    .unwrap();
    let sample = hex("0000000a65888400aabbccddeeff"); // AVCC: length 10, IDR slice
    let frames = hex("2111111121222222");
    let (avc, aac) = (avc(), aac());
    let tracks = [
        TsTrack {
            codec: TsCodec::Avc(&avc),
            timing: &video,
            data: &sample,
        },
        TsTrack {
            codec: TsCodec::Aac(&aac),
            timing: &audio,
            data: &frames,
        },
    ];
    let out = mux_segment(&tracks).unwrap();
    assert_eq!(out.len(), segment_len(&tracks).unwrap());
    out
}

#[test]
fn a_small_segment_byte_for_byte() {
    let out = golden_segment();
    assert_eq!(
        out.len(),
        4 * PACKET_LEN,
        "PAT, PMT, one video PES, one audio PES"
    );

    // Video PES, built by hand: PTS = DTS = 90 000.
    let mut es = hex("00000001 09f0"); // AUD
    es.extend(hex("00000001"));
    es.extend(hex(SPS));
    es.extend(hex("00000001"));
    es.extend(hex(PPS));
    es.extend(hex("000001")); // 3-byte start code before a slice
    es.extend(hex("65888400aabbccddeeff"));
    let mut pes = hex("000001e0"); // packet_start_code_prefix, stream_id
    pes.extend(((3 + 5 + es.len()) as u16).to_be_bytes()); // PES_packet_length
    pes.extend(hex("8480 05")); // data_alignment_indicator; PTS only; header length 5
    pes.extend(hex("2100 05bf 21")); // PTS 90 000
    pes.extend(&es);
    // Adaptation field: discontinuity + random access + PCR (= the decode time), then stuffing.
    let mut video = hex("474100 30");
    let af_len = 184 - pes.len() - 1;
    video.push(af_len as u8); // adaptation_field_length
    video.push(0x80 | 0x40 | 0x10); // discontinuity, random_access, PCR_flag
    video.extend(hex("0000afc8 7e00")); // PCR base 90 000 = 0x15f90
    video.resize(188 - pes.len(), 0xff);
    video.extend(&pes);
    assert_eq!(to_hex(&out[376..564]), to_hex(&video));

    // Audio PES: both frames in one PES, each behind a 7-byte ADTS header (frame length 11).
    let adts = hex("fff14c80017ffc");
    let mut pes = hex("000001c0");
    let payload = 2 * (7 + 4);
    pes.extend(((3 + 5 + payload) as u16).to_be_bytes());
    pes.extend(hex("848005"));
    pes.extend(hex("210005bf21")); // PTS 48 000 ticks at 48 kHz = 90 000
    for frame in ["21111111", "21222222"] {
        pes.extend(&adts);
        pes.extend(hex(frame));
    }
    let mut audio = hex("47410130"); // PUSI, PID 0x101, AF + payload, CC 0
    audio.push((184 - pes.len() - 1) as u8);
    audio.push(0x80 | 0x40); // discontinuity, random_access
    audio.resize(188 - pes.len(), 0xff);
    audio.extend(&pes);
    assert_eq!(to_hex(&out[564..752]), to_hex(&audio));
}

#[test]
fn golden_digest_is_pinned_to_the_format_version() {
    assert_eq!(FORMAT_VERSION, 1);
    let digest = to_hex(&Sha256::digest(golden_segment()));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        eprintln!("golden segment sha256: {digest}");
        return;
    }
    assert_eq!(digest, GOLDEN_SEGMENT_SHA256);
}

#[test]
fn bad_input_is_an_error() {
    let (avc, aac) = (avc(), aac());
    let timing = video_timing(
        1_000_000_000,
        &[StoredSample {
            pts_offset_ns: 0,
            duration_ns: Some(33_333_333),
            size: 8,
            keyframe: true,
        }],
        90_000,
        None,
    )
    .unwrap();
    let track = |data: &'static [u8]| TsTrack {
        codec: TsCodec::Avc(&avc),
        timing: &timing,
        data,
    };
    // A NAL length beyond the sample; sizes and data that disagree.
    let long: &'static [u8] = &[0, 0, 0, 9, 0x65, 1, 2, 3];
    assert!(matches!(
        mux_segment(&[track(long)]),
        Err(TsError::Sample { index: 0, .. })
    ));
    assert!(matches!(
        mux_segment(&[track(&[0, 0, 0, 1, 0x65])]),
        Err(TsError::Data { .. })
    ));
    // Layouts: nothing, audio before video, two videos.
    let ok: &'static [u8] = &[0, 0, 0, 4, 0x65, 1, 2, 3];
    let audio = audio_timing(
        0,
        &[StoredSample {
            pts_offset_ns: 0,
            duration_ns: None,
            size: 1,
            keyframe: true,
        }],
        48_000,
        1024,
    )
    .unwrap();
    let a = TsTrack {
        codec: TsCodec::Aac(&aac),
        timing: &audio,
        data: &[0x21],
    };
    assert!(matches!(mux_segment(&[]), Err(TsError::Tracks(_))));
    assert!(matches!(
        mux_segment(&[a, track(ok)]),
        Err(TsError::Tracks(_))
    ));
    assert!(matches!(
        mux_segment(&[track(ok), track(ok)]),
        Err(TsError::Tracks(_))
    ));
    assert!(mux_segment(&[track(ok), a]).is_ok());
    // AAC that ADTS cannot carry: 960-sample frames.
    let c960 = AacConfig::parse(&[0x17, 0x80, 0x2b, 0x11, 0x0c]).unwrap();
    assert!(matches!(
        media::ts::check_adts(&c960),
        Err(TsError::Adts(_))
    ));
}

// ---- property test ----

/// PES packets of one PID: (PTS, DTS, payload).
type Pes = (u64, u64, Vec<u8>);

fn read_timestamp(t: &[u8]) -> u64 {
    (u64::from(t[0] >> 1 & 0x7) << 30)
        | (u64::from(t[1]) << 22)
        | (u64::from(t[2] >> 1) << 15)
        | (u64::from(t[3]) << 7)
        | u64::from(t[4] >> 1)
}

/// Checks framing and continuity; returns the PES packets per elementary PID.
fn demux(ts: &[u8]) -> Result<BTreeMap<u16, Vec<Pes>>, TestCaseError> {
    prop_assert_eq!(ts.len() % PACKET_LEN, 0);
    let mut raw: BTreeMap<u16, Vec<Vec<u8>>> = BTreeMap::new();
    let mut cc: BTreeMap<u16, u8> = BTreeMap::new();
    for p in ts.chunks(PACKET_LEN) {
        prop_assert_eq!(p[0], 0x47);
        let pid = u16::from_be_bytes([p[1] & 0x1f, p[2]]);
        let afc = p[3] >> 4 & 0x3;
        prop_assert!(afc & 0x1 != 0, "every packet carries payload");
        let counter = p[3] & 0xf;
        match cc.get(&pid) {
            None => {
                prop_assert_eq!(counter, 0);
                prop_assert!(afc & 0x2 != 0 && p[4] > 0 && p[5] & 0x80 != 0);
            }
            Some(&last) => prop_assert_eq!(counter, (last + 1) & 0xf),
        }
        cc.insert(pid, counter);
        let at = if afc & 0x2 != 0 {
            5 + usize::from(p[4])
        } else {
            4
        };
        prop_assert!(at < PACKET_LEN);
        if pid == PID_VIDEO || pid == PID_AUDIO {
            let list = raw.entry(pid).or_default();
            if p[1] & 0x40 != 0 {
                list.push(Vec::new());
            }
            prop_assert!(!list.is_empty());
            list.last_mut().unwrap().extend_from_slice(&p[at..]);
        }
    }
    let mut out = BTreeMap::new();
    for (pid, list) in raw {
        let mut pes_list = Vec::new();
        for pes in list {
            prop_assert_eq!(&pes[..3], &[0, 0, 1]);
            let length = usize::from(u16::from_be_bytes([pes[4], pes[5]]));
            if length != 0 {
                prop_assert_eq!(length + 6, pes.len(), "PES_packet_length");
            }
            let header_len = 9 + usize::from(pes[8]);
            let pts = read_timestamp(&pes[9..14]);
            let dts = if pes[7] & 0xc0 == 0xc0 {
                read_timestamp(&pes[14..19])
            } else {
                pts
            };
            pes_list.push((pts, dts, pes[header_len..].to_vec()));
        }
        out.insert(pid, pes_list);
    }
    Ok(out)
}

/// A video sample: AVCC NAL units of the given types and sizes (types 9, 7, 8 included at times).
fn arb_video_sample() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    proptest::collection::vec(
        (
            prop::sample::select(vec![1u8, 5, 6, 7, 8, 9, 12]),
            proptest::collection::vec(1u8..=255, 0..400),
        ),
        1..4,
    )
}

const MASK_33: u64 = (1 << 33) - 1;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_sample_list_muxes_into_valid_packets(
        video in proptest::option::of(proptest::collection::vec(arb_video_sample(), 1..40)),
        audio_sizes in proptest::collection::vec(1usize..1500, 0..120),
        b_frames in any::<bool>(),
        // Starts up to beyond 2^33 ticks (26.5 h), so PTS wrap.
        start_ns in 1_000_000_000u64..200_000_000_000_000,
    ) {
        prop_assume!(video.is_some() || !audio_sizes.is_empty());
        let (avc, aac) = (avc(), aac());
        let mut tracks_data: Vec<(TrackTiming, Vec<u8>, bool)> = Vec::new();
        let mut expected_video: Vec<Vec<(u8, Vec<u8>)>> = Vec::new();
        if let Some(video) = &video {
            let n = video.len() as i64;
            let samples: Vec<StoredSample> = video.iter().enumerate().map(|(i, nals)| {
                // Decode order I P B: swap pairs after the first frame when b_frames.
                let i = i as i64;
                let f = match (b_frames && i > 0, i % 2) {
                    (true, 1) if i + 1 < n => i + 1,
                    (true, 0) => i - 1,
                    _ => i,
                };
                StoredSample {
                    pts_offset_ns: f * 40_000_000,
                    duration_ns: None,
                    size: nals.iter().map(|(_, b)| 5 + b.len() as u32).sum(),
                    keyframe: i == 0,
                }
            }).collect();
            let timing = video_timing(start_ns, &samples, 90_000, Some(start_ns + n as u64 * 40_000_000)).unwrap();
            let mut data = Vec::new();
            for nals in video {
                for (t, body) in nals {
                    data.extend_from_slice(&(1 + body.len() as u32).to_be_bytes());
                    data.push(*t);
                    data.extend_from_slice(body);
                }
            }
            tracks_data.push((timing, data, true));
            expected_video = video.clone();
        }
        if !audio_sizes.is_empty() {
            let samples: Vec<StoredSample> = audio_sizes.iter().enumerate().map(|(i, &s)| StoredSample {
                pts_offset_ns: i as i64 * 21_333_333,
                duration_ns: None,
                size: s as u32,
                keyframe: true,
            }).collect();
            let timing = audio_timing(start_ns, &samples, 48_000, 1024).unwrap();
            let data: Vec<u8> = audio_sizes.iter().enumerate().flat_map(|(i, &s)| vec![i as u8; s]).collect();
            tracks_data.push((timing, data, false));
        }
        let tracks: Vec<TsTrack<'_>> = tracks_data.iter().map(|(timing, data, is_video)| TsTrack {
            codec: if *is_video { TsCodec::Avc(&avc) } else { TsCodec::Aac(&aac) },
            timing,
            data,
        }).collect();
        let out = mux_segment(&tracks).unwrap();
        prop_assert_eq!(out.len(), segment_len(&tracks).unwrap());
        let streams = demux(&out)?;

        for (timing, data, is_video) in &tracks_data {
            if *is_video {
                let pes = &streams[&PID_VIDEO];
                prop_assert_eq!(pes.len(), timing.samples.len());
                for ((k, (pts, dts, payload)), s) in pes.iter().enumerate().zip(&timing.samples) {
                    prop_assert_eq!(*pts, s.pts & MASK_33);
                    prop_assert_eq!(*dts, s.dts & MASK_33);
                    // Rebuild the expected Annex B access unit.
                    let nals = &expected_video[k];
                    let in_band = nals.iter().any(|(t, _)| *t == 7) && nals.iter().any(|(t, _)| *t == 8);
                    let mut au = vec![0, 0, 0, 1, 0x09, 0xf0];
                    if s.sync && !in_band {
                        for ps in avc.sps.iter().chain(&avc.pps) {
                            au.extend_from_slice(&[0, 0, 0, 1]);
                            au.extend_from_slice(ps);
                        }
                    }
                    for (t, body) in nals {
                        match t {
                            9 => continue,
                            7 | 8 => au.extend_from_slice(&[0, 0, 0, 1]),
                            _ => au.extend_from_slice(&[0, 0, 1]),
                        }
                        au.push(*t);
                        au.extend_from_slice(body);
                    }
                    prop_assert_eq!(payload, &au);
                }
                let _ = data;
            } else {
                let pes = &streams[&PID_AUDIO];
                let mut frames = Vec::new();
                for (pts, dts, payload) in pes {
                    prop_assert_eq!(pts, dts);
                    let first = frames.len();
                    prop_assert_eq!(*pts, ((timing.samples[first].pts as u128 * 90_000 + 24_000) / 48_000) as u64 & MASK_33);
                    let mut rest = &payload[..];
                    while !rest.is_empty() {
                        prop_assert_eq!(&rest[..2], &[0xff, 0xf1]);
                        let len = (usize::from(rest[3] & 0x3) << 11) | (usize::from(rest[4]) << 3) | usize::from(rest[5] >> 5);
                        frames.push(rest[7..len].to_vec());
                        rest = &rest[len..];
                    }
                }
                let stored: Vec<Vec<u8>> = audio_sizes.iter().enumerate().map(|(i, &s)| vec![i as u8; s]).collect();
                prop_assert_eq!(frames, stored);
            }
        }
    }
}
