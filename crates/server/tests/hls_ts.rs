//! MPEG_TS sessions over a socket: a fixture goes in through PutMedia, an ON_DEMAND MPEG_TS
//! session comes out as one muxed playlist of `getTSFragment.ts` segments; each segment is whole
//! 188-byte packets whose video and audio elementary streams carry exactly the ingested frames
//! (Annex B / ADTS framing removed), with producer timestamps running on across segments; ffmpeg (when
//! installed) decodes the concatenated segments without an error line.

mod common;

use std::collections::BTreeMap;

use common::*;

const PID_VIDEO: u16 = 0x100;
const PID_AUDIO: u16 = 0x101;

/// One PES packet: PTS (90 kHz) and payload.
struct Pes {
    pts: u64,
    payload: Vec<u8>,
}

/// Splits a segment into PES packets per PID, checking packet framing and continuity counters.
fn demux(ts: &[u8]) -> BTreeMap<u16, Vec<Pes>> {
    assert_eq!(ts.len() % 188, 0);
    let mut out: BTreeMap<u16, Vec<Vec<u8>>> = BTreeMap::new();
    let mut cc: BTreeMap<u16, u8> = BTreeMap::new();
    for p in ts.chunks(188) {
        assert_eq!(p[0], 0x47);
        let pusi = p[1] & 0x40 != 0;
        let pid = u16::from_be_bytes([p[1] & 0x1f, p[2]]);
        let afc = p[3] >> 4 & 0x3;
        let counter = p[3] & 0xf;
        let mut at = 4;
        if afc & 0x2 != 0 {
            at += 1 + usize::from(p[4]);
        }
        match cc.get(&pid) {
            None => {
                assert_eq!(counter, 0, "counters start at 0");
                assert!(
                    afc & 0x2 != 0 && p[5] & 0x80 != 0,
                    "discontinuity_indicator"
                );
            }
            Some(&last) => assert_eq!(counter, (last + 1) & 0xf, "continuity of PID {pid}"),
        }
        cc.insert(pid, counter);
        if pid == PID_VIDEO || pid == PID_AUDIO {
            let list = out.entry(pid).or_default();
            if pusi {
                list.push(Vec::new());
            }
            list.last_mut().unwrap().extend_from_slice(&p[at..]);
        }
    }
    out.into_iter()
        .map(|(pid, list)| {
            let pes = list
                .into_iter()
                .map(|pes| {
                    assert_eq!(&pes[..3], [0, 0, 1]);
                    let header_len = 9 + usize::from(pes[8]);
                    let t = &pes[9..14];
                    let pts = (u64::from(t[0] >> 1 & 0x7) << 30)
                        | (u64::from(t[1]) << 22)
                        | (u64::from(t[2] >> 1) << 15)
                        | (u64::from(t[3]) << 7)
                        | u64::from(t[4] >> 1);
                    Pes {
                        pts,
                        payload: pes[header_len..].to_vec(),
                    }
                })
                .collect();
            (pid, pes)
        })
        .collect()
}

/// The NAL units of an Annex B stream (start codes removed), AUD / SPS / PPS dropped.
fn slice_nal_units(annex_b: &[u8]) -> Vec<Vec<u8>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= annex_b.len() {
        if annex_b[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let mut end = starts.get(k + 1).map_or(annex_b.len(), |&n| n - 3);
            while end > s && annex_b[end - 1] == 0 {
                end -= 1; // the zero_byte of the next 4-byte start code
            }
            annex_b[s..end].to_vec()
        })
        .filter(|n| !matches!(n[0] & 0x1f, 7..=9))
        .collect()
}

/// The NAL units of an AVCC (4-byte length) sample.
fn avcc_nal_units(mut sample: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while sample.len() >= 4 {
        let len = u32::from_be_bytes(sample[..4].try_into().unwrap()) as usize;
        out.push(sample[4..4 + len].to_vec());
        sample = &sample[4 + len..];
    }
    out
}

/// The raw AAC frames of ADTS frames.
fn adts_frames(mut adts: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !adts.is_empty() {
        assert_eq!(&adts[..2], [0xff, 0xf1]);
        let len = (usize::from(adts[3] & 0x3) << 11)
            | (usize::from(adts[4]) << 3)
            | usize::from(adts[5] >> 5);
        out.push(adts[7..len].to_vec());
        adts = &adts[len..];
    }
    out
}

#[tokio::test]
async fn mpeg_ts_session_serves_muxed_segments_of_the_ingested_frames() {
    let s = start().await;
    for name in ["h264_aac_bframes.mkv", "aac_only.mkv"] {
        let stream = name.trim_end_matches(".mkv").replace('_', "-");
        let mkv = fixture(name);
        ingest(&s, &stream, &mkv).await;
        let master_path = session_url(&s, &stream, "MPEG_TS").await;
        let has_video = !name.starts_with("aac");

        let (status, _, master) = get(&s, &master_path).await;
        assert_eq!(status, 200);
        let master = String::from_utf8(master).unwrap();
        assert!(!master.contains("TYPE=AUDIO"), "{master}");
        if has_video {
            assert!(master.contains("CODECS=\"avc1.64"), "{master}");
            assert!(master.contains(",mp4a.40.2\""), "{master}");
        } else {
            assert!(master.contains("CODECS=\"mp4a.40.2\""), "{master}");
        }
        let media_uri = uris(&master).pop().unwrap();
        assert!(!media_uri.contains("TrackNumber"), "{media_uri}");

        let (status, _, playlist) = get(&s, &format!("/hls/v1/{media_uri}")).await;
        assert_eq!(status, 200);
        let playlist = String::from_utf8(playlist).unwrap();
        assert!(
            playlist.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n"),
            "{playlist}"
        );
        assert!(!playlist.contains("EXT-X-MAP"), "{playlist}");
        assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
        let segments = uris(&playlist);
        assert_eq!(segments.len(), 4, "{playlist}");
        assert!(segments
            .iter()
            .all(|u| u.starts_with("getTSFragment.ts?FragmentNumber=")));

        let expected = frames_by_cluster(&mkv);
        let mut all = Vec::new();
        let mut last_video_pts = None;
        for (i, uri) in segments.iter().enumerate() {
            let (status, head, ts) = get(&s, &format!("/hls/v1/{uri}")).await;
            assert_eq!(status, 200, "{uri}");
            assert!(head.contains("content-type: video/mp2t"), "{head}");
            assert!(
                head.contains("etag: \""),
                "an immutable segment has an ETag: {head}"
            );
            assert!(head.contains(&format!("content-length: {}", ts.len())));
            assert!(head.contains("access-control-allow-origin: *"), "{head}");
            assert!(head.contains("cache-control: private, max-age="), "{head}");
            let streams = demux(&ts);
            let (video_track, audio_track) = if has_video { (1, 2) } else { (0, 1) };
            if has_video {
                let pes = &streams[&PID_VIDEO];
                let samples = &expected[i][&video_track];
                assert_eq!(pes.len(), samples.len(), "one PES per access unit");
                for (p, sample) in pes.iter().zip(samples) {
                    assert_eq!(&p.payload[..6], [0, 0, 0, 1, 0x09, 0xf0], "AUD first");
                    assert_eq!(slice_nal_units(&p.payload), avcc_nal_units(sample));
                }
                let first = pes.iter().map(|p| p.pts).min().unwrap();
                if i == 0 {
                    assert!(first < 90_000, "session timeline starts near 0: {first}");
                }
                if let Some(last) = last_video_pts {
                    assert!(first > last, "PTS run on across fragments");
                }
                last_video_pts = pes.iter().map(|p| p.pts).max();
            }
            let frames: Vec<Vec<u8>> = streams[&PID_AUDIO]
                .iter()
                .flat_map(|p| adts_frames(&p.payload))
                .collect();
            let stored: Vec<Vec<u8>> = expected[i][&audio_track]
                .iter()
                .map(|b| b.to_vec())
                .collect();
            assert_eq!(frames, stored, "{name} fragment {i}: AAC frames");
            all.extend_from_slice(&ts);
        }

        // The fMP4 resources belong to FRAGMENTED_MP4 sessions.
        let token = &master_path[master_path.find("SessionToken=").unwrap()..];
        let (status, _, _) = get(
            &s,
            &format!("/hls/v1/getMP4InitFragment.mp4?{token}&TrackNumber=1"),
        )
        .await;
        assert_eq!(status, 400);

        {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("session.ts");
            std::fs::write(&file, &all).unwrap();
            let out = std::process::Command::new("ffmpeg")
                .args(["-v", "error", "-i"])
                .arg(&file)
                .args(["-f", "null", "-"])
                .output()
                .expect("ffmpeg decodes the session (scripts/test.sh installs it)");
            assert!(out.status.success());
            assert!(
                out.stderr.is_empty(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    // getTSFragment.ts belongs to MPEG_TS sessions.
    let mp4 = session_url(&s, "h264-aac-bframes", "FRAGMENTED_MP4").await;
    let token = &mp4[mp4.find("SessionToken=").unwrap()..];
    let (status, _, body) = get(
        &s,
        &format!("/hls/v1/getTSFragment.ts?FragmentNumber=1&{token}"),
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
}
