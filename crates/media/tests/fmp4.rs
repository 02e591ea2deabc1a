//! `media::fmp4` golden bytes and an independent parse-back: every box the writer emits is
//! decoded by `mp4-atom` (strict) and its fields compared with what was asked for.

use bytes::Bytes;
use media::fmp4::{
    init_segment, media_segment_header, media_segment_len, Fmp4Error, InitTrack, FORMAT_VERSION,
    NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS,
};
use media::mkv::{Event, MkvReader, ReaderLimits};
use media::timeline::{TimedSample, TrackTiming};
use mp4_atom::{Codec, Decode, Ftyp, Mdat, Moof, Moov};
use sha2::{Digest, Sha256};

/// A KVS producer's avcC (Main, level 4.2, 1920x1080; producer-sdk-cpp#109).
const AVCC_D1: &str = "014d002affe1000b674d002a95a81e0089f95001000468ee3c80";
/// AAC-LC, 48 kHz, stereo.
const ASC_LC_48K_STEREO: [u8; 2] = [0x11, 0x90];

/// SHA-256 of each golden output. Pinned to [`FORMAT_VERSION`] 1: if one changes, the bytes
/// served for the same input changed, so FORMAT_VERSION (in every ETag) must be bumped too.
const GOLDEN_DIGESTS: [(&str, &str); 4] = [
    (
        "init_avc_d1",
        "58cef1cb18e0e870f86612628dccc1c9aa0f2e720b04b4f74eb1bd57490df3fa",
    ),
    (
        "init_hevc_h265_fixture",
        "128d143ad091a8fd872c1f10bc3119c5d7c840c9b31dffb68b5627b35ef3b283",
    ),
    (
        "init_aac",
        "8fab955f2f82e2f5e8a296c73e1718982d1c73e105a911e3422bc756f86f83aa",
    ),
    (
        "media_segment_bframes",
        "bc54ea58cd6e94081ad072de11b199bff126b3708dc61b8dd408a32e6a1298ae",
    ),
];

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Hex of a golden table: `#` starts a comment, whitespace is ignored.
fn golden(table: &str) -> String {
    table
        .lines()
        .flat_map(|l| l.split('#').next().unwrap_or("").split_whitespace())
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn digest(b: &[u8]) -> String {
    to_hex(&Sha256::digest(b))
}

fn check_digest(name: &str, bytes: &[u8]) {
    assert_eq!(
        FORMAT_VERSION, 1,
        "re-pin GOLDEN_DIGESTS for the new FORMAT_VERSION"
    );
    let expected = GOLDEN_DIGESTS.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(
        digest(bytes),
        expected,
        "{name}: bytes changed; hex: {}",
        to_hex(bytes)
    );
}

/// Decodes `ftyp` + `moov` strictly and checks nothing is left over.
fn decode_init(bytes: &[u8]) -> (Ftyp, Moov) {
    let mut buf = bytes;
    let ftyp = Ftyp::decode(&mut buf).expect("ftyp decodes");
    let moov = Moov::decode(&mut buf).expect("moov decodes");
    assert!(buf.is_empty(), "{} bytes after moov", buf.len());
    (ftyp, moov)
}

fn check_common_init(ftyp: &Ftyp, moov: &Moov, timescale: u32, handler: &[u8; 4]) {
    assert_eq!(ftyp.major_brand, b"iso5".into());
    assert_eq!(ftyp.minor_version, 512);
    assert_eq!(
        ftyp.compatible_brands,
        vec![b"iso5".into(), b"iso6".into(), b"mp41".into()]
    );
    assert_eq!(moov.mvhd.timescale, timescale);
    assert_eq!(moov.mvhd.next_track_id, 2);
    assert_eq!(moov.trak.len(), 1);
    let trak = &moov.trak[0];
    assert_eq!(trak.tkhd.track_id, 1);
    assert!(trak.tkhd.enabled && trak.tkhd.in_movie);
    assert_eq!(trak.mdia.mdhd.timescale, timescale);
    assert_eq!(trak.mdia.mdhd.language, "und");
    assert_eq!(trak.mdia.hdlr.handler, handler.into());
    assert_eq!(trak.mdia.minf.dinf.dref.entries.len(), 1);
    let stbl = &trak.mdia.minf.stbl;
    assert_eq!(stbl.stsd.codecs.len(), 1);
    assert!(stbl.stts.entries.is_empty());
    assert!(stbl.stsc.entries.is_empty());
    assert!(stbl.stco.as_ref().is_some_and(|c| c.entries.is_empty()));
    let mvex = moov.mvex.as_ref().expect("mvex");
    assert_eq!(mvex.trex.len(), 1);
    assert_eq!(mvex.trex[0].track_id, 1);
    assert_eq!(mvex.trex[0].default_sample_description_index, 1);
}

#[test]
fn init_avc_golden_and_parse_back() {
    let avcc = hex(AVCC_D1);
    let init = init_segment(
        &InitTrack::Avc {
            avcc: &avcc,
            width: 1920,
            height: 1080,
        },
        90_000,
    )
    .unwrap();
    let (ftyp, moov) = decode_init(&init);
    check_common_init(&ftyp, &moov, 90_000, b"vide");
    let minf = &moov.trak[0].mdia.minf;
    assert!(minf.vmhd.is_some() && minf.smhd.is_none());
    let Codec::Avc1(avc1) = &minf.stbl.stsd.codecs[0] else {
        panic!("not avc1")
    };
    assert_eq!((avc1.visual.width, avc1.visual.height), (1920, 1080));
    assert_eq!(avc1.visual.data_reference_index, 1);
    assert_eq!(avc1.visual.depth, 0x18);
    assert_eq!(
        (
            avc1.avcc.avc_profile_indication,
            avc1.avcc.avc_level_indication
        ),
        (0x4d, 0x2a)
    );
    assert_eq!(avc1.avcc.length_size, 4);
    assert_eq!(
        avc1.avcc.sequence_parameter_sets,
        vec![hex("674d002a95a81e0089f950")]
    );
    assert_eq!(avc1.avcc.picture_parameter_sets, vec![hex("68ee3c80")]);
    // The avcC body is the CodecPrivate, verbatim.
    let at = init.windows(4).position(|w| w == b"avcC").unwrap();
    assert_eq!(&init[at + 4..at + 4 + avcc.len()], &avcc[..]);
    assert_eq!(
        u32::from_be_bytes(init[at - 4..at].try_into().unwrap()) as usize,
        8 + avcc.len()
    );
    check_digest("init_avc_d1", &init);
}

#[test]
fn init_hevc_golden_and_parse_back() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/h265.mkv");
    let bytes = std::fs::read(path).expect("tests/fixtures/h265.mkv is committed");
    let mut reader = MkvReader::new(ReaderLimits::default());
    reader.push(Bytes::from(bytes));
    let hvcc = loop {
        match reader.next_event().unwrap() {
            Some(Event::Tracks(info)) => break info.tracks[0].codec_private.clone().unwrap(),
            Some(_) => {}
            None => panic!("h265.mkv has no Tracks"),
        }
    };
    let init = init_segment(
        &InitTrack::Hevc {
            hvcc: &hvcc,
            width: 320,
            height: 240,
        },
        90_000,
    )
    .unwrap();
    let (ftyp, moov) = decode_init(&init);
    check_common_init(&ftyp, &moov, 90_000, b"vide");
    let Codec::Hvc1(hvc1) = &moov.trak[0].mdia.minf.stbl.stsd.codecs[0] else {
        panic!("not hvc1")
    };
    assert_eq!((hvc1.visual.width, hvc1.visual.height), (320, 240));
    assert_eq!(hvc1.hvcc.general_profile_idc, 1);
    assert_eq!(hvc1.hvcc.general_level_idc, 60);
    let types: Vec<u8> = hvc1.hvcc.arrays.iter().map(|a| a.nal_unit_type).collect();
    assert!(
        types.starts_with(&[32, 33, 34]),
        "VPS, SPS, PPS arrays: {types:?}"
    );
    let at = init.windows(4).position(|w| w == b"hvcC").unwrap();
    assert_eq!(&init[at + 4..at + 4 + hvcc.len()], &hvcc[..]);
    check_digest("init_hevc_h265_fixture", &init);
}

/// The AAC init, box by box (ISO/IEC 14496-12 field names).
const INIT_AAC_GOLDEN: &str = "
# ftyp: major_brand iso5, minor_version 512, compatible_brands iso5 iso6 mp41
0000001c6674797069736f350000020069736f3569736f366d703431
# moov
000002446d6f6f76
#   mvhd: v0; creation/modification 0; timescale; duration 0; rate 1.0; volume 1.0; reserved; matrix; pre_defined; next_track_ID 2
0000006c6d7668640000000000000000000000000000bb80000000000001000001000000000000000000000000010000000000000000000000000000000100000000000000000000000000004000000000000000000000000000000000000000000000000000000000000002
#   trak
000001a87472616b
#     tkhd: v0 flags enabled|in_movie; times 0; track_ID 1; duration 0; layer, alternate_group, volume; matrix; width, height (16.16)
0000005c746b6864000000030000000000000000000000010000000000000000000000000000000000000000010000000001000000000000000000000000000000010000000000000000000000000000400000000000000000000000
#     mdia
000001446d646961
#       mdhd: v0; times 0; timescale; duration 0; language und (0x55c4); pre_defined
000000206d6468640000000000000000000000000000bb800000000055c40000
#       hdlr: v0; pre_defined; handler_type; reserved; name
0000002d68646c720000000000000000736f756e000000000000000000000000536f756e6448616e646c657200
#       minf
000000ef6d696e66
#         smhd: v0; balance 0; reserved
00000010736d68640000000000000000
#         dinf
0000002464696e66
#           dref: v0; entry_count 1
0000001c647265660000000000000001
#             url : v0 flags 1 (self-contained)
0000000c75726c2000000001
#         stbl
000000b37374626c
#           stsd: v0; entry_count 1
00000067737473640000000000000001
#             mp4a: reserved(6); data_reference_index 1; reserved(8); channelcount 2; samplesize 16; pre_defined; reserved; samplerate 48000.0
000000576d703461000000000000000100000000000000000002001000000000bb800000
#               esds: v0; ES_Descriptor(03, ES_ID 0, flags 0; DecoderConfigDescriptor(04, objectTypeIndication 0x40, streamType 5 (0x15), bufferSizeDB/maxBitrate/avgBitrate 0; DecSpecificInfo(05, ASC 1190)); SLConfigDescriptor(06, predefined 2))
000000336573647300000000038080802200000004808080144015000000000000000000000005808080021190068080800102
#           stts: v0; entry_count 0
00000010737474730000000000000000
#           stsc: v0; entry_count 0
00000010737473630000000000000000
#           stsz: v0; sample_size 0; sample_count 0
000000147374737a000000000000000000000000
#           stco: v0; entry_count 0
000000107374636f0000000000000000
#   mvex
000000286d766578
#     trex: v0; track_ID 1; default_sample_description_index 1; default duration/size/flags 0
0000002074726578000000000000000100000001000000000000000000000000
";

#[test]
fn init_aac_golden_and_parse_back() {
    let init = init_segment(
        &InitTrack::Aac {
            asc: &ASC_LC_48K_STEREO,
            sample_rate: 48_000,
            channels: 2,
        },
        48_000,
    )
    .unwrap();
    let (ftyp, moov) = decode_init(&init);
    check_common_init(&ftyp, &moov, 48_000, b"soun");
    let minf = &moov.trak[0].mdia.minf;
    assert!(minf.smhd.is_some() && minf.vmhd.is_none());
    let Codec::Mp4a(mp4a) = &minf.stbl.stsd.codecs[0] else {
        panic!("not mp4a")
    };
    assert_eq!(mp4a.audio.channel_count, 2);
    assert_eq!(mp4a.audio.sample_size, 16);
    assert_eq!(mp4a.audio.sample_rate.integer(), 48_000);
    let dec = &mp4a.esds.es_desc.dec_config;
    assert_eq!(dec.object_type_indication, 0x40);
    assert_eq!(dec.stream_type, 0x05);
    let specific = dec.dec_specific.as_ref().expect("DecoderSpecificInfo");
    assert_eq!(
        (specific.profile, specific.freq_index, specific.chan_conf),
        (2, 3, 2)
    );
    assert_eq!(to_hex(&init), golden(INIT_AAC_GOLDEN));
    check_digest("init_aac", &init);
}

/// Three video samples I P B (90 kHz, 30 fps), decode order, sizes 5, 3, 2.
fn small_timing() -> TrackTiming {
    let base = 158_760_000_000_000; // 2025-11-24 as 90 kHz ticks
    let s = |duration, offset, size, sync, pts, dts| TimedSample {
        duration,
        composition_offset: offset,
        size,
        sync,
        pts,
        dts,
    };
    TrackTiming {
        timescale: 90_000,
        base_decode_time: base,
        samples: vec![
            s(3000, 3000, 5, true, base + 3000, base),
            s(3000, 6000, 3, false, base + 9000, base + 3000),
            s(3000, 0, 2, false, base + 6000, base + 6000),
        ],
        duration: 9000,
    }
}

/// The media segment of `small_timing`, box by box.
const MEDIA_SEGMENT_GOLDEN: &str = "
# moof
000000886d6f6f66
#   mfhd: v0; sequence_number 7
000000106d6668640000000000000007
#   traf
0000007074726166
#     tfhd: v0 flags default-base-is-moof; track_ID 1
00000010746668640002000000000001
#     tfdt: v1; baseMediaDecodeTime 158_760_000_000_000
0000001474666474010000000000906431679000
#     trun: v0 flags data-offset|duration|size|flags|cts (0xf01); sample_count 3; data_offset; data_offset 144 (moof 136 + mdat header 8)
000000447472756e00000f01 00000003 00000090
#       sample 0: duration 3000, size 5, flags sync (depends_on 2), composition offset 3000
00000bb8 00000005 02000000 00000bb8
#       sample 1: duration 3000, size 3, flags non-sync (depends_on 1, is_non_sync), offset 6000
00000bb8 00000003 01010000 00001770
#       sample 2: duration 3000, size 2, non-sync, offset 0
00000bb8 00000002 01010000 00000000
# mdat: header only: size = 8 + 10 data bytes
000000126d646174
";

#[test]
fn media_segment_golden_and_parse_back() {
    let timing = small_timing();
    let header = media_segment_header(7, &timing).unwrap();
    assert_eq!(to_hex(&header), golden(MEDIA_SEGMENT_GOLDEN));
    check_digest("media_segment_bframes", &header);
    let data = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    let mut segment = header.clone();
    segment.extend_from_slice(&data);
    assert_eq!(segment.len() as u64, media_segment_len(&timing));

    let mut buf = &segment[..];
    let moof = Moof::decode(&mut buf).expect("moof decodes");
    let mdat = Mdat::decode(&mut buf).expect("mdat decodes");
    assert!(buf.is_empty());
    assert_eq!(mdat.data, data);
    assert_eq!(moof.mfhd.sequence_number, 7);
    assert_eq!(moof.traf.len(), 1);
    let traf = &moof.traf[0];
    assert_eq!(traf.tfhd.track_id, 1);
    assert!(traf.tfhd.default_base_is_moof);
    assert_eq!(
        traf.tfdt.as_ref().unwrap().base_media_decode_time,
        timing.base_decode_time
    );
    let trun = &traf.trun[0];
    // data_offset points from the moof's first byte to the first sample byte.
    assert_eq!(trun.data_offset, Some(header.len() as i32));
    let entries: Vec<_> = trun.samples.iter().collect();
    assert_eq!(entries.len(), 3);
    for (entry, sample) in entries.iter().zip(&timing.samples) {
        assert_eq!(entry.duration, Some(sample.duration));
        assert_eq!(entry.size, Some(sample.size));
        assert_eq!(
            entry.flags,
            Some(if sample.sync {
                SYNC_SAMPLE_FLAGS
            } else {
                NON_SYNC_SAMPLE_FLAGS
            })
        );
        assert_eq!(entry.cts, Some(i64::from(sample.composition_offset)));
    }
}

#[test]
fn audio_segment_has_no_composition_offsets() {
    let t = TrackTiming {
        timescale: 48_000,
        base_decode_time: 10,
        samples: (0..4)
            .map(|i| TimedSample {
                duration: 1024,
                composition_offset: 0,
                size: 300,
                sync: true,
                pts: 10 + i * 1024,
                dts: 10 + i * 1024,
            })
            .collect(),
        duration: 4096,
    };
    let mut segment = media_segment_header(1, &t).unwrap();
    segment.resize(media_segment_len(&t) as usize, 0xaa);
    let mut buf = &segment[..];
    let moof = Moof::decode(&mut buf).unwrap();
    Mdat::decode(&mut buf).unwrap();
    let entries: Vec<_> = moof.traf[0].trun[0].samples.iter().collect();
    assert!(entries
        .iter()
        .all(|e| e.cts.is_none() && e.flags == Some(SYNC_SAMPLE_FLAGS)));
}

#[test]
fn large_mdat_uses_largesize() {
    // 5 samples of 1 GiB: more than 4 GiB of data, never materialised.
    let t = TrackTiming {
        timescale: 90_000,
        base_decode_time: 0,
        samples: (0..5)
            .map(|i| TimedSample {
                duration: 3000,
                composition_offset: 0,
                size: 1 << 30,
                sync: i == 0,
                pts: i * 3000,
                dts: i * 3000,
            })
            .collect(),
        duration: 15000,
    };
    let header = media_segment_header(1, &t).unwrap();
    let mdat = &header[header.len() - 16..];
    assert_eq!(&mdat[..8], &[0, 0, 0, 1, b'm', b'd', b'a', b't']);
    assert_eq!(
        u64::from_be_bytes(mdat[8..].try_into().unwrap()),
        16 + 5 * (1 << 30)
    );
    assert_eq!(media_segment_len(&t), header.len() as u64 + 5 * (1 << 30));
    let mut buf = &header[..];
    let moof = Moof::decode(&mut buf).unwrap();
    assert_eq!(moof.traf[0].trun[0].data_offset, Some(header.len() as i32));
}

#[test]
fn bad_inputs_are_errors() {
    let avcc = hex(AVCC_D1);
    assert!(matches!(
        init_segment(
            &InitTrack::Avc {
                avcc: &avcc[..10],
                width: 1,
                height: 1
            },
            90_000
        ),
        Err(Fmp4Error::Codec(_))
    ));
    assert!(matches!(
        init_segment(
            &InitTrack::Avc {
                avcc: &avcc,
                width: 70_000,
                height: 1
            },
            90_000
        ),
        Err(Fmp4Error::OutOfRange(_))
    ));
    assert!(init_segment(
        &InitTrack::Avc {
            avcc: &avcc,
            width: 1920,
            height: 1080
        },
        0
    )
    .is_err());
    assert!(init_segment(
        &InitTrack::Aac {
            asc: &[],
            sample_rate: 48_000,
            channels: 2
        },
        48_000
    )
    .is_err());
    let empty = TrackTiming {
        timescale: 1,
        base_decode_time: 0,
        samples: vec![],
        duration: 0,
    };
    assert_eq!(media_segment_header(1, &empty), Err(Fmp4Error::NoSamples));
}

#[test]
fn negative_composition_offsets_use_a_version_1_trun() {
    let positive = media_segment_header(1, &small_timing()).unwrap();
    let version_of_trun = |b: &[u8]| b[b.windows(4).position(|w| w == b"trun").unwrap() + 4];
    assert_eq!(version_of_trun(&positive), 0);
    let mut negative = small_timing();
    negative.samples[1].composition_offset = -3600;
    let header = media_segment_header(1, &negative).unwrap();
    assert_eq!(
        version_of_trun(&header),
        1,
        "signed offsets need trun version 1 (ISO/IEC 14496-12 §8.8.8)"
    );
    let at = header.windows(4).position(|w| w == b"trun").unwrap();
    // The second sample's composition offset is written as a two's-complement i32.
    let bytes = (-3600i32).to_be_bytes();
    assert!(header[at..].windows(4).any(|w| w == bytes));
}
