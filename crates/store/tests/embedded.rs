//! Conformance tests of the embedded Catalog + MediaStore + Archive.

use bytes::Bytes;
use media::TrackNumber;
use std::collections::BTreeMap;
use std::sync::Arc;
use store::*;

fn new_stream(name: &str) -> NewStream {
    NewStream {
        name: name.into(),
        arn: format!("arn:aws:kinesisvideo:us-east-1:000000000000:stream/{name}/1"),
        device_name: None,
        media_type: Some("video/h264".into()),
        kms_key_id: "k".into(),
        version: "v1".into(),
        creation_time: Timestamp(1),
        data_retention_hours: 24,
        storage_tier: "HOT".into(),
        tags: BTreeMap::new(),
    }
}

fn config(track: u64, cpd: &'static [u8]) -> CodecConfig {
    CodecConfig {
        track: TrackNumber(track),
        track_type: 1,
        codec_id: "V_MPEG4/ISO/AVC".into(),
        codec_private: Bytes::from_static(cpd),
        track_name: None,
        pixel_width: Some(320),
        pixel_height: Some(240),
        sampling_frequency: None,
        channels: None,
    }
}

fn fragment(
    stream: StreamId,
    cfg: CodecConfigId,
    producer_ms: i64,
    server_ms: i64,
    data: &'static [u8],
) -> PendingFragment {
    PendingFragment {
        parts: vec![Bytes::from_static(data)],
        row: NewFragment {
            stream,
            number: FragmentNumber::candidate(Timestamp(server_ms)),
            producer_timestamp: Timestamp(producer_ms),
            server_timestamp: Timestamp(server_ms),
            duration_ms: 1000,
            tracks: vec![FragmentTrack {
                track: TrackNumber(1),
                codec_config: cfg,
                data_offset: 0,
                data_len: data.len() as u64,
                samples: vec![SampleEntry {
                    pts_offset_ns: 0,
                    duration_ns: None,
                    size: data.len() as u32,
                    keyframe: true,
                }],
            }],
            tags: vec![("k".into(), "v".into())],
            media: MediaLocation {
                segment: 0,
                offset: 0,
                len: 0,
            },
        },
    }
}

#[tokio::test]
async fn streams_versions_and_tags() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, _media) = embedded::open(dir.path()).await.unwrap();
    let s = catalog.create_stream(new_stream("a.b_c")).await.unwrap();
    assert!(matches!(
        catalog.create_stream(new_stream("a.b_c")).await,
        Err(StoreError::AlreadyExists(_))
    ));
    catalog.create_stream(new_stream("a_x")).await.unwrap();
    catalog.create_stream(new_stream("b")).await.unwrap();
    let names: Vec<_> = catalog
        .list_streams(Some("a."), None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["a.b_c"], "prefix match must be literal, not LIKE");
    let page: Vec<_> = catalog
        .list_streams(None, Some("a.b_c"), 1)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(page, ["a_x"]);

    let upd = StreamUpdate {
        set_tags: vec![("t".into(), "1".into())],
        new_version: "v2".into(),
        ..Default::default()
    };
    assert!(matches!(
        catalog.update_stream(s.id, Some("nope"), upd.clone()).await,
        Err(StoreError::VersionMismatch { .. })
    ));
    let s2 = catalog.update_stream(s.id, Some("v1"), upd).await.unwrap();
    assert_eq!(s2.version, "v2");
    assert_eq!(s2.tags.get("t").map(String::as_str), Some("1"));
    assert_eq!(
        catalog
            .stream_by_arn(&s.arn)
            .await
            .unwrap()
            .unwrap()
            .version,
        "v2"
    );

    catalog.delete_stream(s.id, None).await.unwrap();
    assert!(catalog.stream_by_name("a.b_c").await.unwrap().is_none());
    let again = catalog.create_stream(new_stream("a.b_c")).await.unwrap();
    assert_ne!(again.id, s.id, "a recreated stream is a new incarnation");
}

#[tokio::test]
async fn fragments_are_numbered_durable_and_queryable() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, media) = embedded::open(dir.path()).await.unwrap();
    let s = catalog.create_stream(new_stream("s")).await.unwrap();
    let c1 = catalog
        .codec_config_for(s.id, &config(1, b"\x01a"))
        .await
        .unwrap();
    assert_eq!(
        catalog
            .codec_config_for(s.id, &config(1, b"\x01a"))
            .await
            .unwrap(),
        c1,
        "unchanged CPD reuses its row"
    );
    let c2 = catalog
        .codec_config_for(s.id, &config(1, b"\x01b"))
        .await
        .unwrap();
    assert_ne!(c1, c2, "a CPD change makes a new row");
    assert_eq!(
        catalog
            .codec_config(c2)
            .await
            .unwrap()
            .unwrap()
            .codec_private,
        Bytes::from_static(b"\x01b")
    );
    let all: Vec<_> = catalog
        .codec_configs(s.id)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, c)| (id, c.codec_private))
        .collect();
    assert_eq!(
        all,
        [
            (c1, Bytes::from_static(b"\x01a")),
            (c2, Bytes::from_static(b"\x01b"))
        ]
    );

    let archive = Archive::new(catalog.clone(), media.clone());
    // Server timestamps equal or going backwards must still give strictly increasing numbers.
    let numbered = |mut f: PendingFragment, last: Option<FragmentNumber>| {
        f.row.number = FragmentNumber::next(last, f.row.server_timestamp);
        f
    };
    let n1 = archive
        .persist(numbered(fragment(s.id, c1, 1000, 5000, b"one"), None))
        .await
        .unwrap();
    let n2 = archive
        .persist(numbered(fragment(s.id, c1, 2000, 5000, b"two!"), Some(n1)))
        .await
        .unwrap();
    let n3 = archive
        .persist(numbered(fragment(s.id, c2, 3000, 4000, b"three"), Some(n2)))
        .await
        .unwrap();
    assert!(n1 < n2 && n2 < n3);
    assert_eq!(catalog.last_fragment_number(s.id).await.unwrap(), Some(n3));
    assert!(
        matches!(
            archive.persist(fragment(s.id, c1, 9, 4000, b"x")).await,
            Err(StoreError::FragmentNumberNotIncreasing { .. })
        ),
        "the catalog refuses a number that does not increase"
    );
    let texts = [n1.to_string(), n2.to_string(), n3.to_string()];
    assert!(texts.iter().all(|t| t.len() == FRAGMENT_NUMBER_DIGITS));
    assert!(
        texts[0] < texts[1] && texts[1] < texts[2],
        "text order is numeric order"
    );

    let q = |start, end, after| FragmentQuery {
        stream: s.id,
        kind: TimestampKind::Producer,
        start: Timestamp(start),
        end: Timestamp(end),
        after,
        limit: 10,
    };
    let got: Vec<_> = catalog
        .query_fragments(q(1000, 2000, None))
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.number)
        .collect();
    assert_eq!(got, [n1, n2], "range is inclusive on both ends");
    let got: Vec<_> = catalog
        .query_fragments(q(0, 9999, Some((Timestamp(2000), n2))))
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.number)
        .collect();
    assert_eq!(got, [n3]);
    let latest: Vec<_> = catalog
        .latest_fragments(s.id, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.number)
        .collect();
    assert_eq!(latest, [n2, n3]);

    let f2 = catalog.fragment(s.id, n2).await.unwrap().unwrap();
    assert_eq!(f2.tags, vec![("k".to_string(), "v".to_string())]);
    assert_eq!(
        media.read(s.id, f2.media, 0..f2.media.len).await.unwrap(),
        Bytes::from_static(b"two!")
    );
    assert_eq!(
        media.read(s.id, f2.media, 1..3).await.unwrap(),
        Bytes::from_static(b"wo")
    );
    assert!(
        media.read(s.id, f2.media, 0..99).await.is_err(),
        "reads stay inside the fragment"
    );

    // Everything survives a reopen, and new appends go to a new segment.
    drop(archive);
    drop(catalog);
    drop(media);
    let (catalog, media) = embedded::open(dir.path()).await.unwrap();
    let f3 = catalog.fragment(s.id, n3).await.unwrap().unwrap();
    assert_eq!(
        media.read(s.id, f3.media, 0..f3.media.len).await.unwrap(),
        Bytes::from_static(b"three")
    );
    let archive = Archive::new(catalog.clone(), media.clone());
    let n4 = archive
        .persist(numbered(fragment(s.id, c2, 4000, 6000, b"four"), Some(n3)))
        .await
        .unwrap();
    assert!(n4 > n3);
    let f4 = catalog.fragment(s.id, n4).await.unwrap().unwrap();
    assert!(f4.media.segment > f3.media.segment);

    // Retention: rows before the cutoff go, and their fully unreferenced segment is reported.
    let segs = catalog
        .delete_fragments_before(s.id, Timestamp(5500))
        .await
        .unwrap();
    assert_eq!(segs, vec![f3.media.segment]);
    media.delete_segments(s.id, &segs).await.unwrap();
    assert!(catalog.fragment(s.id, n3).await.unwrap().is_none());
    assert_eq!(
        media.read(s.id, f4.media, 0..4).await.unwrap(),
        Bytes::from_static(b"four")
    );
}

#[tokio::test]
async fn group_commit_serves_concurrent_streams_and_survives_a_deleted_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, media) = embedded::open(dir.path()).await.unwrap();
    let a = catalog.create_stream(new_stream("a")).await.unwrap();
    let b = catalog.create_stream(new_stream("b")).await.unwrap();
    let ca = catalog
        .codec_config_for(a.id, &config(1, b"x"))
        .await
        .unwrap();
    let archive = Archive::new(catalog.clone(), media.clone() as Arc<dyn MediaStore>);
    catalog.delete_stream(b.id, None).await.unwrap();
    let mut waits = Vec::new();
    for i in 0..20 {
        let mut fa = fragment(a.id, ca, i, 10_000 + i, b"aaaa");
        fa.row.number = FragmentNumber(i as u128 + 1);
        waits.push(archive.submit(fa).await.unwrap());
        waits.push(
            archive
                .submit(fragment(b.id, ca, i, 10_000 + i, b"bbbb"))
                .await
                .unwrap(),
        );
    }
    let mut ok = Vec::new();
    for (i, w) in waits.into_iter().enumerate() {
        let r = w.await.unwrap();
        if i % 2 == 0 {
            ok.push(r.unwrap());
        } else {
            assert!(r.is_err(), "fragments of a deleted stream fail");
        }
    }
    assert!(ok.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(catalog.latest_fragments(a.id, 100).await.unwrap().len(), 20);
}

#[tokio::test]
async fn appends_of_many_parts_are_written_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let media = SegmentMediaStore::open(dir.path()).unwrap();
    // More parts than one writev takes (IOV_MAX is 1024 on Linux).
    let parts: Vec<Bytes> = (0..3000u32)
        .map(|i| Bytes::from(i.to_be_bytes().to_vec()))
        .collect();
    let expected: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    let loc = media.append(StreamId(1), parts).await.unwrap();
    media.sync().await.unwrap();
    assert_eq!(loc.len, 12_000);
    assert_eq!(
        &media.read(StreamId(1), loc, 0..loc.len).await.unwrap()[..],
        &expected[..]
    );
}

#[tokio::test]
async fn continuity_is_decided_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, media) = embedded::open(dir.path()).await.unwrap();
    let s = catalog.create_stream(new_stream("c")).await.unwrap();
    let c1 = catalog
        .codec_config_for(s.id, &config(1, b"a"))
        .await
        .unwrap();
    let c2 = catalog
        .codec_config_for(s.id, &config(1, b"b"))
        .await
        .unwrap();
    let archive = Archive::new(catalog.clone(), media);
    let mut last = None;
    // (producer start, server start, config); every fragment lasts 1000 ms.
    let plan = [
        (0, 100_000, c1),
        (1000, 101_000, c1),
        (2100, 102_010, c1),
        (6000, 102_990, c1),
        (7000, 104_000, c2),
    ];
    for (p, sv, c) in plan {
        let mut f = fragment(s.id, c, p, sv, b"x");
        f.row.number = FragmentNumber::next(last, Timestamp(sv));
        last = Some(archive.persist(f).await.unwrap());
    }
    let frags = catalog.latest_fragments(s.id, 10).await.unwrap();
    let seqs: Vec<u64> = frags.iter().map(|f| f.sequence).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
    let flags: Vec<u8> = frags.iter().map(|f| f.continuity.flags).collect();
    use store::Continuity as C;
    assert_eq!(
        flags,
        [
            0,
            0,
            C::PRODUCER_GAP,            // 100 ms producer gap; server 10 ms
            C::PRODUCER_GAP | C::PAUSE, // producer +2.9 s; server overlaps by 20 ms only
            C::CODEC_CHANGE | C::PRODUCER_GAP | C::SERVER_GAP | C::PAUSE,
        ]
    );
    let last = frags.last().unwrap().continuity;
    assert_eq!(
        [
            last.count(C::CODEC_CHANGE),
            last.count(C::PRODUCER_GAP),
            last.count(C::SERVER_GAP),
            last.count(C::PAUSE)
        ],
        [1, 3, 1, 2]
    );
}

#[tokio::test]
async fn the_caching_catalog_never_serves_what_a_write_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, media) = embedded::open(dir.path()).await.unwrap();
    let catalog = Arc::new(CachingCatalog::new(sqlite.clone()));
    let s = catalog.create_stream(new_stream("cached")).await.unwrap();
    let c1 = catalog
        .codec_config_for(s.id, &config(1, b"a"))
        .await
        .unwrap();
    assert_eq!(
        catalog
            .codec_configs_shared(s.id, Some(c1))
            .await
            .unwrap()
            .len(),
        1
    );
    // A config written after the list was cached is found when asked for by id.
    let c2 = catalog
        .codec_config_for(s.id, &config(1, b"b"))
        .await
        .unwrap();
    assert_eq!(
        catalog
            .codec_configs_shared(s.id, Some(c2))
            .await
            .unwrap()
            .len(),
        2
    );

    let archive = Archive::new(catalog.clone(), media);
    let mut f = fragment(s.id, c1, 1000, 1000, b"x");
    f.row.number = FragmentNumber(5);
    let n = archive.persist(f).await.unwrap();
    let mut f2 = fragment(s.id, c1, 2000, 2000, b"y");
    f2.row.number = FragmentNumber(6);
    assert_eq!(catalog.latest_fragments(s.id, 5).await.unwrap().len(), 1);
    let n2 = archive.persist(f2).await.unwrap();
    let edge: Vec<_> = catalog
        .latest_fragments(s.id, 5)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.number)
        .collect();
    assert_eq!(edge, [n, n2], "a commit refreshes the cached live edge");
    let cached = catalog.fragment_shared(s.id, n).await.unwrap().unwrap();
    assert!(
        Arc::ptr_eq(
            &cached,
            &catalog.fragment_shared(s.id, n).await.unwrap().unwrap()
        ),
        "served from memory"
    );
    assert!(catalog.stream_by_id(s.id).await.unwrap().is_some());

    // Retention through the cache drops the cached row.
    catalog
        .delete_fragments_before(s.id, Timestamp(5000))
        .await
        .unwrap();
    assert!(catalog.fragment_shared(s.id, n).await.unwrap().is_none());
    // Deleting the stream drops its record at once (not after the TTL).
    catalog.delete_stream(s.id, None).await.unwrap();
    assert!(catalog.stream_by_id(s.id).await.unwrap().is_none());
}

#[tokio::test]
async fn reads_follow_a_segment_that_grew_after_it_was_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let media = SegmentMediaStore::open(dir.path()).unwrap();
    let a = media
        .append(StreamId(7), vec![Bytes::from_static(b"first")])
        .await
        .unwrap();
    media.sync().await.unwrap();
    assert_eq!(
        &media.read(StreamId(7), a, 0..5).await.unwrap()[..],
        b"first"
    );
    let b = media
        .append(StreamId(7), vec![Bytes::from_static(b"second")])
        .await
        .unwrap();
    media.sync().await.unwrap();
    assert_eq!(a.segment, b.segment);
    assert_eq!(
        &media.read(StreamId(7), b, 0..6).await.unwrap()[..],
        b"second"
    );
    assert_eq!(&media.read(StreamId(7), b, 2..4).await.unwrap()[..], b"co");
    media.delete_stream(StreamId(7)).await.unwrap();
    assert!(
        media.read(StreamId(7), b, 0..6).await.is_err(),
        "a deleted stream's media is gone"
    );
}

#[tokio::test]
async fn a_segment_cut_short_under_its_mapping_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let media = SegmentMediaStore::open(dir.path()).unwrap();
    let a = media
        .append(StreamId(3), vec![Bytes::from_static(b"kept")])
        .await
        .unwrap();
    let b = media
        .append(StreamId(3), vec![Bytes::from_static(b"lost")])
        .await
        .unwrap();
    media.sync().await.unwrap();
    // Mapped (and the mapping cached) by a first read of the second fragment.
    assert_eq!(
        &media.read(StreamId(3), b, 0..4).await.unwrap()[..],
        b"lost"
    );
    let path = dir.path().join("3").join(format!("{:016}.seg", b.segment));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(b.offset + 1)
        .unwrap();
    // Never the mapping's missing pages (a SIGBUS): an error that names the file.
    let e = media.read(StreamId(3), b, 0..4).await.unwrap_err();
    assert!(matches!(e, StoreError::MediaIo { .. }), "{e}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    assert_eq!(
        &media.read(StreamId(3), a, 0..4).await.unwrap()[..],
        b"kept"
    );
}
