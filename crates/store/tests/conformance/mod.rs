//! The conformance suite every archive backend passes (issue #9): what a [`Catalog`] and a
//! [`MediaStore`] must guarantee, per the trait docs and docs/architecture.md, written against the
//! traits only. A backend's test file implements [`Backend`] and calls [`conformance_suite!`],
//! which makes one `#[tokio::test]` per suite function.
//!
//! Errors are checked as `Ok` / `Err` and by what the store holds afterwards, never by variant:
//! which error a backend returns is the error layer's business, not this suite's.

pub mod fixtures;

use async_trait::async_trait;
use bytes::Bytes;
use fixtures::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use store::*;

/// One backend under test: a catalog and a media store over the same (fresh) storage.
#[async_trait]
pub trait Backend: Send {
    fn catalog(&self) -> Arc<dyn Catalog>;
    fn media(&self) -> Arc<dyn MediaStore>;
    /// What a restart sees: every handle dropped and the same storage opened again. `false` for a
    /// backend that keeps nothing across a restart (an in-memory one), which the reopen test skips.
    async fn reopen(&mut self) -> bool;
    /// Clears the stored track summaries of every fragment row, as a catalog written before
    /// summaries were stored holds them; `false` for a backend that stores none.
    async fn forget_summaries(&mut self) -> bool {
        false
    }
}

/// One `#[tokio::test]` per suite function, each on a fresh `$backend` (an expression that may
/// `.await`). Every suite function is listed here once, so a new backend gets all of them.
#[macro_export]
macro_rules! conformance_suite {
    ($backend:expr) => {
        $crate::conformance_suite!(@tests $backend;
            streams_are_found_by_name_arn_and_id,
            a_duplicate_stream_name_is_refused,
            list_streams_matches_a_literal_prefix_and_pages_by_name,
            updates_check_the_version,
            tags_are_set_and_removed,
            deletes_check_the_version_and_take_everything_of_the_stream,
            codec_configs_are_reused_until_they_change,
            a_committed_fragment_reads_back_as_submitted,
            fragment_numbers_only_increase_per_stream,
            producer_time_queries_are_inclusive_ordered_and_paged,
            server_time_queries_are_inclusive_ordered_and_paged,
            latest_fragments_are_the_live_edge_in_ingest_order,
            fragments_after_a_number_follow_ingest_order,
            fragment_summaries_list_what_the_full_queries_list,
            rows_without_a_stored_summary_are_summarised_from_their_samples,
            sequence_and_continuity_are_decided_at_commit,
            media_reads_are_byte_exact_by_range,
            retention_deletes_old_fragments_and_keeps_the_rest,
            retention_never_deletes_bytes_an_uncommitted_append_wrote,
            a_deferred_segment_deletion_happens_once_nothing_is_in_flight,
            streams_do_not_see_each_others_fragments,
            a_fragment_of_a_deleted_stream_fails_alone,
            a_batch_is_committed_whole_or_not_at_all,
            back_to_back_fragments_commit_in_submission_order,
            a_reopened_store_keeps_everything_committed,
            a_writer_lease_is_exclusive_until_it_expires,
            a_lease_is_renewed_only_while_its_epoch_is_current,
            a_released_lease_can_be_taken_at_once,
            leases_are_renewed_together_each_by_its_own_epoch,
            a_fragment_under_a_lost_lease_is_refused,
            media_epochs_are_never_repeated,
            pending_media_is_listed_until_its_fragment_commits,
            the_first_session_key_stored_wins,
            commits_and_stream_changes_are_announced,
        );
    };
    (@tests $backend:expr; $($name:ident,)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let mut backend = $backend;
                $crate::conformance::$name(&mut backend).await;
            }
        )*
    };
}

/// The backend's catalog and media store, and an [`Archive`] committing to them.
fn open(b: &dyn Backend) -> (Arc<dyn Catalog>, Arc<dyn MediaStore>, Arc<Archive>) {
    let (catalog, media) = (b.catalog(), b.media());
    let archive = Archive::new(catalog.clone(), media.clone());
    (catalog, media, archive)
}

async fn assert_last_number(
    catalog: &dyn Catalog,
    stream: StreamId,
    expected: Option<&FragmentNumber>,
) {
    let last = catalog.last_fragment_number(stream).await.unwrap();
    assert_eq!(
        last.as_ref(),
        expected,
        "last fragment number of {stream:?}"
    );
}

/// `f` is still in the catalog as it was, and its bytes are `bytes`.
async fn assert_stored(
    catalog: &dyn Catalog,
    media: &dyn MediaStore,
    f: &FragmentRecord,
    bytes: Bytes,
) {
    let stored = catalog.fragment(f.stream, f.number).await.unwrap();
    assert_eq!(stored.as_ref(), Some(f));
    assert_eq!(read_all(media, f).await, bytes, "bytes of {}", f.number);
}

// ---- streams --------------------------------------------------------------------------------

pub async fn streams_are_found_by_name_arn_and_id(b: &mut dyn Backend) {
    let catalog = b.catalog();
    let asked = new_stream("cam.1_a");
    let s = catalog.create_stream(asked.clone()).await.unwrap();
    let other = catalog.create_stream(new_stream("cam2")).await.unwrap();
    assert_ne!(s.id, other.id);
    assert_eq!(
        (s.name.as_str(), s.arn.as_str(), s.version.as_str()),
        (asked.name.as_str(), asked.arn.as_str(), "v1")
    );
    assert_eq!(
        (&s.device_name, &s.media_type, &s.kms_key_id),
        (&asked.device_name, &asked.media_type, &asked.kms_key_id)
    );
    assert_eq!(
        (
            s.creation_time,
            s.data_retention_hours,
            &s.storage_tier,
            &s.tags
        ),
        (
            asked.creation_time,
            asked.data_retention_hours,
            &asked.storage_tier,
            &asked.tags
        )
    );
    assert_eq!(s.status, StreamStatus::Active);

    assert_eq!(
        catalog.stream_by_name("cam.1_a").await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(
        catalog.stream_by_arn(&s.arn).await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(catalog.stream_by_id(s.id).await.unwrap(), Some(s.clone()));
    assert_eq!(
        catalog.stream_by_id(other.id).await.unwrap(),
        Some(other.clone())
    );
    assert_eq!(catalog.stream_by_name("cam.1_").await.unwrap(), None);
    assert_eq!(catalog.stream_by_name("CAM.1_A").await.unwrap(), None);
    assert_eq!(
        catalog.stream_by_arn(&format!("{}x", s.arn)).await.unwrap(),
        None
    );
    assert_eq!(
        catalog
            .stream_by_id(StreamId(s.id.0.max(other.id.0) + 1000))
            .await
            .unwrap(),
        None
    );
    let mut all = catalog.all_streams().await.unwrap();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(all, [s, other]);
}

pub async fn a_duplicate_stream_name_is_refused(b: &mut dyn Backend) {
    let catalog = b.catalog();
    let s = catalog.create_stream(new_stream("dup")).await.unwrap();
    let mut again = new_stream("dup");
    again.arn = "arn:aws:kinesisvideo:us-east-1:000000000000:stream/dup/2".into();
    again.version = "v9".into();
    assert!(catalog.create_stream(again.clone()).await.is_err());
    assert_eq!(
        catalog.stream_by_name("dup").await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(catalog.stream_by_arn(&again.arn).await.unwrap(), None);
    assert_eq!(catalog.all_streams().await.unwrap().len(), 1);

    // Once deleted, the name is free again, for a new incarnation with a new id.
    catalog.delete_stream(s.id, None).await.unwrap();
    let recreated = catalog.create_stream(again).await.unwrap();
    assert_ne!(recreated.id, s.id, "stream ids are never reused");
    assert_eq!(
        catalog.stream_by_name("dup").await.unwrap(),
        Some(recreated)
    );
}

pub async fn list_streams_matches_a_literal_prefix_and_pages_by_name(b: &mut dyn Backend) {
    let catalog = b.catalog();
    // Created out of name order; '_' , '.' and '%' must match literally (no LIKE patterns).
    for name in ["b", "a_x", "a.b_c", "a.b", "aXb", "a%", "a.c"] {
        catalog.create_stream(new_stream(name)).await.unwrap();
    }
    let list = |prefix: Option<&'static str>, after: Option<&'static str>, limit| {
        let catalog = catalog.clone();
        async move {
            let got = catalog.list_streams(prefix, after, limit).await.unwrap();
            names(&got)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(None, None, 100).await,
        ["a%", "a.b", "a.b_c", "a.c", "aXb", "a_x", "b"]
    );
    assert_eq!(list(Some("a."), None, 100).await, ["a.b", "a.b_c", "a.c"]);
    assert_eq!(list(Some("a_"), None, 100).await, ["a_x"]);
    assert_eq!(list(Some("a%"), None, 100).await, ["a%"]);
    assert_eq!(list(Some("a.b"), None, 100).await, ["a.b", "a.b_c"]);
    assert!(list(Some("c"), None, 100).await.is_empty());
    // Pages: strictly after the last name of the previous page, `limit` at most.
    assert_eq!(list(None, None, 3).await, ["a%", "a.b", "a.b_c"]);
    assert_eq!(list(None, Some("a.b_c"), 3).await, ["a.c", "aXb", "a_x"]);
    assert_eq!(list(None, Some("a_x"), 3).await, ["b"]);
    assert!(list(None, Some("b"), 3).await.is_empty());
    assert!(list(None, None, 0).await.is_empty());
    assert_eq!(list(Some("a."), Some("a.b"), 1).await, ["a.b_c"]);
    // `after` need not be a stream's name.
    assert_eq!(list(Some("a."), Some("a.bz"), 10).await, ["a.c"]);
}

pub async fn updates_check_the_version(b: &mut dyn Backend) {
    let catalog = b.catalog();
    let s = catalog.create_stream(new_stream("upd")).await.unwrap();
    let update = |version: &str| StreamUpdate {
        device_name: Some("camera-2".into()),
        media_type: Some("video/h265".into()),
        data_retention_hours: Some(48),
        storage_tier: Some("WARM".into()),
        new_version: version.into(),
        ..Default::default()
    };
    assert!(catalog
        .update_stream(s.id, Some("stale"), update("v2"))
        .await
        .is_err());
    assert_eq!(
        catalog.stream_by_id(s.id).await.unwrap(),
        Some(s.clone()),
        "a refused update changes nothing"
    );

    let u = catalog
        .update_stream(s.id, Some("v1"), update("v2"))
        .await
        .unwrap();
    assert_eq!(u.version, "v2");
    assert_eq!(u.device_name.as_deref(), Some("camera-2"));
    assert_eq!(u.media_type.as_deref(), Some("video/h265"));
    assert_eq!(u.data_retention_hours, 48);
    assert_eq!(u.storage_tier, "WARM");
    assert_eq!(
        (&u.name, &u.arn, u.id, &u.tags),
        (&s.name, &s.arn, s.id, &s.tags)
    );
    assert_eq!(
        catalog.stream_by_arn(&s.arn).await.unwrap(),
        Some(u.clone())
    );
    assert_eq!(
        catalog.stream_by_name("upd").await.unwrap(),
        Some(u.clone())
    );

    // The old version is now stale; no expected version means no check.
    assert!(catalog
        .update_stream(s.id, Some("v1"), update("v3"))
        .await
        .is_err());
    let only_retention = StreamUpdate {
        data_retention_hours: Some(0),
        new_version: "v3".into(),
        ..Default::default()
    };
    let u3 = catalog
        .update_stream(s.id, None, only_retention)
        .await
        .unwrap();
    assert_eq!(u3.version, "v3");
    assert_eq!(u3.data_retention_hours, 0);
    assert_eq!(
        (u3.device_name.as_deref(), u3.storage_tier.as_str()),
        (Some("camera-2"), "WARM"),
        "fields not in the update stay"
    );
    assert_eq!(catalog.stream_by_id(s.id).await.unwrap(), Some(u3));

    let missing = StreamId(s.id.0 + 1000);
    assert!(catalog
        .update_stream(missing, None, update("v4"))
        .await
        .is_err());
    assert_eq!(catalog.stream_by_id(missing).await.unwrap(), None);
}

pub async fn tags_are_set_and_removed(b: &mut dyn Backend) {
    let catalog = b.catalog();
    let s = catalog.create_stream(new_stream("tags")).await.unwrap();
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    // (tags set, tags removed, tags after); the stream starts with site=lobby.
    type Pairs<'a> = &'a [(&'a str, &'a str)];
    let steps: [(Pairs, &[&str], _); 3] = [
        (
            &[("site", "garage"), ("owner", "ops ✓"), ("empty", "")],
            &[],
            map(&[("empty", ""), ("owner", "ops ✓"), ("site", "garage")]),
        ),
        (
            &[],
            &["site", "never-set"],
            map(&[("empty", ""), ("owner", "ops ✓")]),
        ),
        // Removal applies after setting, as TagStream / UntagStream are separate calls anyway.
        (&[("a", "1")], &["owner"], map(&[("a", "1"), ("empty", "")])),
    ];
    for (i, (set, remove, expected)) in steps.into_iter().enumerate() {
        let update = StreamUpdate {
            set_tags: map(set).into_iter().collect(),
            remove_tags: remove.iter().map(|k| k.to_string()).collect(),
            new_version: format!("v{}", i + 2),
            ..Default::default()
        };
        let version = format!("v{}", i + 1);
        let u = catalog
            .update_stream(s.id, Some(&version), update)
            .await
            .unwrap();
        assert_eq!(u.tags, expected, "step {i}");
        let stored = catalog.stream_by_name("tags").await.unwrap().unwrap();
        assert_eq!(stored.tags, expected, "step {i}");
    }
}

pub async fn deletes_check_the_version_and_take_everything_of_the_stream(b: &mut dyn Backend) {
    let (catalog, media, archive) = open(b);
    let mut gone = Feed::new(&*catalog, "gone").await;
    let mut kept = Feed::new(&*catalog, "kept").await;
    let g1 = gone.put(&archive, T0, T0, payload(1, 300)).await;
    let k1 = kept.put(&archive, T0, T0, payload(2, 300)).await;
    let g = catalog.fragment(gone.stream, g1).await.unwrap().unwrap();

    assert!(catalog
        .delete_stream(gone.stream, Some("stale"))
        .await
        .is_err());
    assert!(catalog.stream_by_id(gone.stream).await.unwrap().is_some());
    assert!(catalog.fragment(gone.stream, g1).await.unwrap().is_some());

    catalog
        .delete_stream(gone.stream, Some("v1"))
        .await
        .unwrap();
    media.delete_stream(gone.stream).await.unwrap();
    assert_eq!(catalog.stream_by_id(gone.stream).await.unwrap(), None);
    assert_eq!(catalog.stream_by_name("gone").await.unwrap(), None);
    assert_eq!(names(&catalog.all_streams().await.unwrap()), ["kept"]);
    // Rows of a deleted stream: none, whether the backend answers "nothing" or an error.
    assert!(!matches!(
        catalog.fragment(gone.stream, g1).await,
        Ok(Some(_))
    ));
    assert!(!matches!(catalog.latest_fragments(gone.stream, 10).await, Ok(v) if !v.is_empty()));
    assert!(!matches!(catalog.codec_configs(gone.stream).await, Ok(v) if !v.is_empty()));
    assert!(!matches!(
        catalog.codec_config(gone.config).await,
        Ok(Some(_))
    ));
    assert!(media
        .read(gone.stream, g.media, 0..g.media.len)
        .await
        .is_err());
    assert!(
        catalog.delete_stream(gone.stream, None).await.is_err(),
        "already gone"
    );
    // No config rows for a stream that is gone (they would never be deleted).
    let orphan = catalog
        .codec_config_for(gone.stream, &video(1, b"\x01z"))
        .await;
    assert!(orphan.is_err(), "{orphan:?}");

    // The other stream keeps its rows and bytes.
    let k = catalog.fragment(kept.stream, k1).await.unwrap().unwrap();
    assert_eq!(read_all(&*media, &k).await, payload(2, 300));

    // A recreated stream of the same name starts empty.
    let again = Feed::new(&*catalog, "gone").await;
    assert_ne!(again.stream, gone.stream);
    assert_eq!(again.last, None);
    assert!(catalog
        .latest_fragments(again.stream, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(catalog.codec_configs(again.stream).await.unwrap().len(), 1);
}

// ---- codec configs --------------------------------------------------------------------------

pub async fn codec_configs_are_reused_until_they_change(b: &mut dyn Backend) {
    let catalog = b.catalog();
    let s = catalog.create_stream(new_stream("codecs")).await.unwrap();
    let other = catalog.create_stream(new_stream("other")).await.unwrap();
    assert!(catalog.codec_configs(s.id).await.unwrap().is_empty());

    let v1 = config_id(&*catalog, s.id, video(1, b"\x01a")).await;
    let a1 = config_id(&*catalog, s.id, audio(2, b"\x12\x10")).await;
    assert_ne!(v1, a1);
    assert_eq!(
        config_id(&*catalog, s.id, video(1, b"\x01a")).await,
        v1,
        "the same config is the same row"
    );
    assert_eq!(config_id(&*catalog, s.id, audio(2, b"\x12\x10")).await, a1);
    // Any field makes a new config, not just the codec private data.
    let mut wider = video(1, b"\x01a");
    wider.pixel_width = Some(1920);
    let v2 = config_id(&*catalog, s.id, wider.clone()).await;
    let v3 = config_id(&*catalog, s.id, video(1, b"\x01b")).await;
    // Back to the first config: "the track's latest" is what is compared, so a new row again.
    let v4 = config_id(&*catalog, s.id, video(1, b"\x01a")).await;
    let ids = BTreeSet::from([v1, a1, v2, v3, v4]);
    assert_eq!(ids.len(), 5, "{ids:?}");
    // Another stream's identical config is its own row.
    let o1 = config_id(&*catalog, other.id, video(1, b"\x01a")).await;
    assert!(!ids.contains(&o1));

    assert_eq!(
        catalog.codec_config(v3).await.unwrap(),
        Some(video(1, b"\x01b"))
    );
    assert_eq!(catalog.codec_config(v2).await.unwrap(), Some(wider.clone()));
    assert_eq!(
        catalog.codec_config(a1).await.unwrap(),
        Some(audio(2, b"\x12\x10"))
    );
    let all = catalog.codec_configs(s.id).await.unwrap();
    assert_eq!(
        all,
        [
            (v1, video(1, b"\x01a")),
            (a1, audio(2, b"\x12\x10")),
            (v2, wider),
            (v3, video(1, b"\x01b")),
            (v4, video(1, b"\x01a")),
        ],
        "oldest first"
    );
    assert_eq!(
        catalog.codec_configs(other.id).await.unwrap(),
        [(o1, video(1, b"\x01a"))]
    );

    // The shared list: the same content, and a config written after it was first asked for is
    // in it when asked for by id.
    assert_eq!(
        *catalog.codec_configs_shared(s.id, Some(v4)).await.unwrap(),
        all
    );
    let a2 = config_id(&*catalog, s.id, audio(2, b"\x11\x90")).await;
    let shared = catalog.codec_configs_shared(s.id, Some(a2)).await.unwrap();
    assert_eq!(shared.last(), Some(&(a2, audio(2, b"\x11\x90"))));
    assert_eq!(shared.len(), 6);
}

// ---- fragments ------------------------------------------------------------------------------

pub async fn a_committed_fragment_reads_back_as_submitted(b: &mut dyn Backend) {
    let (catalog, media, archive) = open(b);
    let (s, v, a) = video_and_audio(&*catalog, "read").await;
    let (vb, ab) = (payload(3, 5000), payload(4, 701));
    let pending = fragment(
        s.id,
        FragmentNumber::candidate(Timestamp(T0 + 40)),
        T0 - 250,
        T0 + 40,
        &[(1, v, vb.clone()), (2, a, ab.clone())],
    );
    let submitted = pending.row.clone();
    let n = archive.persist(pending).await.unwrap();
    assert_eq!(n, submitted.number);
    assert_eq!(n.to_string().len(), FRAGMENT_NUMBER_DIGITS);

    let f = catalog.fragment(s.id, n).await.unwrap().unwrap();
    assert_eq!((f.stream, f.number), (s.id, n));
    assert_eq!(f.producer_timestamp, Timestamp(T0 - 250));
    assert_eq!(f.server_timestamp, Timestamp(T0 + 40));
    assert_eq!(f.duration_ms, 1000);
    assert_eq!(
        f.cluster_timecode_ms,
        Some(submitted.cluster_timecode_ms),
        "the Cluster Timecode as sent"
    );
    assert_ne!(submitted.cluster_timecode_ms, f.producer_timestamp.millis());
    assert_eq!(f.tracks, submitted.tracks, "sample tables round-trip");
    assert_eq!(f.tags, submitted.tags, "tags keep their order");
    assert_eq!(f.media.len, 5701);
    assert_eq!(f.size_bytes, 5701);
    assert_eq!(f.sequence, 0);
    assert_eq!(
        f.continuity,
        Continuity::default(),
        "a stream's first fragment"
    );
    assert_eq!(*catalog.fragment_shared(s.id, n).await.unwrap().unwrap(), f);
    let whole = read_all(&*media, &f).await;
    assert_eq!(&whole[..5000], &vb[..]);
    assert_eq!(&whole[5000..], &ab[..]);

    // Numbers that were never committed are not found.
    assert_eq!(
        catalog
            .fragment(s.id, FragmentNumber(n.0 + 1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        catalog
            .fragment(s.id, FragmentNumber(n.0 - 1))
            .await
            .unwrap(),
        None
    );
    assert!(catalog
        .fragment_shared(s.id, FragmentNumber(1))
        .await
        .unwrap()
        .is_none());
}

pub async fn fragment_numbers_only_increase_per_stream(b: &mut dyn Backend) {
    let (catalog, _, archive) = open(b);
    let mut feed = Feed::new(&*catalog, "numbers").await;
    assert_last_number(&*catalog, feed.stream, None).await;

    let n1 = feed.put(&archive, T0, T0 + 5000, payload(1, 10)).await;
    assert_last_number(&*catalog, feed.stream, Some(&n1)).await;
    // The server clock going back does not make numbers go back (FragmentNumber::next).
    let n2 = feed
        .put(&archive, T0 + 1000, T0 + 4000, payload(2, 10))
        .await;
    assert!(n2 > n1);
    assert_last_number(&*catalog, feed.stream, Some(&n2)).await;

    // A number not above the last is refused, and nothing of it is stored.
    for refused in [n2, n1, FragmentNumber(n1.0 - 1)] {
        let f = fragment(
            feed.stream,
            refused,
            T0 + 9000,
            T0 + 9000,
            &[(1, feed.config, payload(9, 10))],
        );
        assert!(archive.persist(f).await.is_err(), "{refused} after {n2}");
    }
    assert_last_number(&*catalog, feed.stream, Some(&n2)).await;
    assert_eq!(
        numbers(&catalog.latest_fragments(feed.stream, 10).await.unwrap()),
        [n1, n2]
    );
    assert_eq!(
        catalog
            .fragment(feed.stream, FragmentNumber(n1.0 - 1))
            .await
            .unwrap(),
        None
    );
    let unchanged = catalog.fragment(feed.stream, n1).await.unwrap().unwrap();
    assert_eq!(unchanged.producer_timestamp, Timestamp(T0));

    // Numbers are per stream: another stream may use lower ones.
    let mut other = Feed::new(&*catalog, "numbers-2").await;
    let o1 = other.put(&archive, T0, T0, payload(3, 10)).await;
    assert!(o1 < n1);
    assert_last_number(&*catalog, other.stream, Some(&o1)).await;
    assert_last_number(&*catalog, feed.stream, Some(&n2)).await;

    // The catalog's own insert refuses the same way.
    let mut row = fragment(
        other.stream,
        o1,
        T0,
        T0,
        &[(1, other.config, payload(3, 10))],
    )
    .row;
    row.media = catalog
        .fragment(other.stream, o1)
        .await
        .unwrap()
        .unwrap()
        .media;
    assert!(catalog.insert_fragments(vec![row]).await.is_err());
    assert_eq!(
        numbers(&catalog.latest_fragments(other.stream, 10).await.unwrap()),
        [o1]
    );
}

/// Six fragments whose producer order, server order and ingest (number) order all differ, with
/// ties on both timestamps; `expected` is the order of `kind` by (timestamp, number).
async fn time_range_queries(b: &mut dyn Backend, kind: TimestampKind, expected: [usize; 6]) {
    let (catalog, _, archive) = open(b);
    let mut feed = Feed::new(&*catalog, "query").await;
    let mut noise = Feed::new(&*catalog, "query-noise").await;
    // (producer, server) offsets from T0, in ingest order.
    let plan = [
        (5000, 10_000),
        (4000, 12_000),
        (3000, 11_000),
        (3000, 11_000),
        (2000, 13_000),
        (9000, 12_000),
    ];
    let mut committed = Vec::new();
    for (i, (p, s)) in plan.into_iter().enumerate() {
        committed.push(
            feed.put(&archive, T0 + p, T0 + s, payload(i as u8, 20))
                .await,
        );
        noise.put(&archive, T0 + p, T0 + s, payload(99, 5)).await;
    }
    let ts = |i: usize| {
        let (p, s) = plan[i];
        Timestamp(
            T0 + if kind == TimestampKind::Producer {
                p
            } else {
                s
            },
        )
    };
    let want = |idx: &[usize]| idx.iter().map(|&i| committed[i]).collect::<Vec<_>>();
    let query = |start: Timestamp, end: Timestamp, after, limit| {
        let catalog = catalog.clone();
        let q = FragmentQuery {
            stream: feed.stream,
            kind,
            start,
            end,
            after,
            limit,
        };
        async move { catalog.query_fragments(q).await.unwrap() }
    };
    let (first, last) = (ts(expected[0]), ts(expected[5]));

    // Both ends inclusive, ascending by (timestamp, number), only this stream's fragments.
    let all = query(first, last, None, 100).await;
    assert_eq!(numbers(&all), want(&expected));
    assert!(all.iter().all(|f| f.stream == feed.stream));
    assert_eq!(
        numbers(&query(Timestamp(0), Timestamp(i64::MAX), None, 100).await),
        want(&expected)
    );
    // A fragment starting a millisecond outside the range is not in it, whatever its duration.
    let inner = query(Timestamp(first.0 + 1), Timestamp(last.0 - 1), None, 100).await;
    assert_eq!(numbers(&inner), want(&expected[1..5]));
    // A range of one instant holds every fragment starting then.
    let tie = ts(expected[1]);
    assert_eq!(ts(expected[2]), tie, "the plan has a tie here");
    assert_eq!(
        numbers(&query(tie, tie, None, 100).await),
        want(&expected[1..3])
    );
    assert!(query(Timestamp(last.0 + 1), Timestamp(i64::MAX), None, 100)
        .await
        .is_empty());
    assert!(
        query(Timestamp(first.0 + 1), Timestamp(tie.0 - 1), None, 100)
            .await
            .is_empty()
    );
    // `limit` caps a page.
    assert_eq!(
        numbers(&query(first, last, None, 1).await),
        want(&expected[..1])
    );

    // Keyset pages of two: each resumes strictly after the last (timestamp, number) of the
    // previous one, ties included, and together they are the whole range once.
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = query(first, last, after, 2).await;
        assert!(page.len() <= 2);
        let Some(end) = page.last() else { break };
        let ts_of = |f: &FragmentRecord| match kind {
            TimestampKind::Producer => f.producer_timestamp,
            TimestampKind::Server => f.server_timestamp,
        };
        after = Some((ts_of(end), end.number));
        pages.push(numbers(&page));
        assert!(pages.len() <= 4, "paging does not end: {pages:?}");
    }
    assert_eq!(pages.concat(), want(&expected));
    assert_eq!(pages.len(), 3);
    // `after` inside a tie: the tied fragment with the higher number follows.
    let resumed = query(first, last, Some((tie, committed[expected[1]])), 100).await;
    assert_eq!(numbers(&resumed), want(&expected[2..]));
    // `after` before `start`: the range still starts at `start`, inclusive.
    let early = query(tie, last, Some((first, committed[expected[0]])), 100).await;
    assert_eq!(numbers(&early), want(&expected[1..]));
}

pub async fn producer_time_queries_are_inclusive_ordered_and_paged(b: &mut dyn Backend) {
    time_range_queries(b, TimestampKind::Producer, [4, 2, 3, 1, 0, 5]).await;
}

pub async fn server_time_queries_are_inclusive_ordered_and_paged(b: &mut dyn Backend) {
    time_range_queries(b, TimestampKind::Server, [0, 2, 3, 1, 5, 4]).await;
}

/// `query_fragment_summaries` and `latest_fragment_summaries` return exactly the fragments (and
/// order) of `query_fragments` and `latest_fragments`, each as `FragmentRecord::summary` makes it:
/// every field but the sample tables, tags and media location, and each track's span.
pub async fn fragment_summaries_list_what_the_full_queries_list(b: &mut dyn Backend) {
    let (catalog, _, archive) = open(b);
    let (s, v, a) = video_and_audio(&*catalog, "summaries").await;
    let mut noise = Feed::new(&*catalog, "summaries-noise").await;
    // Producer order, server order and ingest order differ, with ties; two tracks, then one.
    let plan = [
        (5000, 10_000),
        (4000, 12_000),
        (3000, 11_000),
        (3000, 11_000),
        (2000, 13_000),
        (9000, 12_000),
    ];
    let mut last = None;
    let mut committed = Vec::new();
    for (i, (p, srv)) in plan.into_iter().enumerate() {
        let number = FragmentNumber::next(last, Timestamp(T0 + srv));
        last = Some(number);
        let tracks: Vec<(u64, CodecConfigId, Bytes)> = if i % 3 == 2 {
            vec![(1, v, payload(i as u8, 30))]
        } else {
            vec![
                (1, v, payload(i as u8, 30)),
                (2, a, payload(50 + i as u8, 12)),
            ]
        };
        let f = fixtures::fragment(s.id, number, T0 + p, T0 + srv, &tracks);
        committed.push(archive.persist(f).await.unwrap());
        noise.put(&archive, T0 + p, T0 + srv, payload(99, 5)).await;
    }
    let summaries = |records: &[FragmentRecord]| {
        records
            .iter()
            .map(FragmentRecord::summary)
            .collect::<Vec<_>>()
    };
    for kind in [TimestampKind::Producer, TimestampKind::Server] {
        let ranges = [
            (Timestamp(0), Timestamp(i64::MAX)),
            (Timestamp(T0 + 3000), Timestamp(T0 + 3000)),
            (Timestamp(T0 + 11_000), Timestamp(T0 + 12_000)),
            (Timestamp(T0 + 20_000), Timestamp(i64::MAX)),
        ];
        for (start, end) in ranges {
            for limit in [0, 1, 2, 100] {
                // Paged with the keyset, as the server walks a window.
                let mut after = None;
                let mut pages = 0;
                loop {
                    let q = FragmentQuery {
                        stream: s.id,
                        kind,
                        start,
                        end,
                        after,
                        limit,
                    };
                    let full = catalog.query_fragments(q.clone()).await.unwrap();
                    let listed = catalog.query_fragment_summaries(q).await.unwrap();
                    assert_eq!(
                        listed,
                        summaries(&full),
                        "{kind:?} {start:?}..{end:?} {limit}"
                    );
                    assert!(listed.iter().all(|f| f.stream == s.id));
                    let Some(end_of_page) = full.last() else {
                        break;
                    };
                    let ts = match kind {
                        TimestampKind::Producer => end_of_page.producer_timestamp,
                        TimestampKind::Server => end_of_page.server_timestamp,
                    };
                    after = Some((ts, end_of_page.number));
                    pages += 1;
                    assert!(pages <= plan.len(), "paging does not end");
                }
            }
        }
    }
    let everything = |kind| whole_range(s.id, kind);
    let all = catalog
        .query_fragment_summaries(everything(TimestampKind::Server))
        .await
        .unwrap();
    assert_eq!(all.len(), plan.len());
    let two_tracks = all.iter().find(|f| f.number == committed[0]).unwrap();
    assert_eq!(
        two_tracks
            .tracks
            .iter()
            .map(|t| (t.track, t.codec_config, t.span.samples))
            .collect::<Vec<_>>(),
        [(media::TrackNumber(1), v, 2), (media::TrackNumber(2), a, 2)]
    );
    assert!(two_tracks.tracks[0].span.video.is_some());
    for limit in [0, 1, 3, 100] {
        let full = catalog.latest_fragments(s.id, limit).await.unwrap();
        let listed = catalog
            .latest_fragment_summaries(s.id, limit)
            .await
            .unwrap();
        assert_eq!(listed, summaries(&full), "latest {limit}");
    }
    let newest = catalog.latest_fragment_summaries(s.id, 100).await.unwrap();
    assert_eq!(
        newest.iter().map(|f| f.number).collect::<Vec<_>>(),
        committed
    );
    // After retention, the summaries are gone with the rows.
    catalog
        .delete_fragments_before(s.id, Timestamp(T0 + 12_000))
        .await
        .unwrap();
    let q = everything(TimestampKind::Producer);
    let left = catalog.query_fragment_summaries(q.clone()).await.unwrap();
    let full = catalog.query_fragments(q).await.unwrap();
    assert_eq!(left, summaries(&full));
    assert_eq!(left.len(), 3);
}

/// Rows written before the catalog stored summaries list the same summaries, computed from
/// their sample tables.
pub async fn rows_without_a_stored_summary_are_summarised_from_their_samples(b: &mut dyn Backend) {
    let (catalog, _, archive) = open(b);
    let mut feed = Feed::new(&*catalog, "old-rows").await;
    let mut committed = Vec::new();
    for i in 0..4 {
        committed.push(
            feed.put(&archive, T0 + 1000 * i, T0 + 1000 * i, payload(i as u8, 9))
                .await,
        );
    }
    let q = whole_range(feed.stream, TimestampKind::Server);
    let expected: Vec<FragmentSummary> = catalog
        .query_fragments(q.clone())
        .await
        .unwrap()
        .iter()
        .map(FragmentRecord::summary)
        .collect();
    assert_eq!(expected.len(), 4);
    if !b.forget_summaries().await {
        return;
    }
    // Written after: has its own summary, beside the old rows.
    committed.push(
        feed.put(&archive, T0 + 9000, T0 + 9000, payload(7, 9))
            .await,
    );
    let listed = catalog.query_fragment_summaries(q.clone()).await.unwrap();
    let full: Vec<FragmentSummary> = catalog
        .query_fragments(q)
        .await
        .unwrap()
        .iter()
        .map(FragmentRecord::summary)
        .collect();
    assert_eq!(listed[..4], expected[..]);
    assert_eq!(listed, full);
    let newest = catalog
        .latest_fragment_summaries(feed.stream, 3)
        .await
        .unwrap();
    assert_eq!(newest[..], full[2..]);
}

pub async fn fragments_after_a_number_follow_ingest_order(b: &mut dyn Backend) {
    let (catalog, _, archive) = open(b);
    let mut feed = Feed::new(&*catalog, "after").await;
    let mut noise = Feed::new(&*catalog, "after-noise").await;
    assert!(catalog
        .fragments_after(feed.stream, None, 5)
        .await
        .unwrap()
        .is_empty());
    let mut committed = Vec::new();
    // Server time going backwards: the order is ingest order (number), not timestamps.
    for (i, s) in [3000, 1000, 2000, 500, 4000].into_iter().enumerate() {
        committed.push(
            feed.put(&archive, T0 + 1000 * i as i64, T0 + s, payload(1, 8))
                .await,
        );
        noise
            .put(&archive, T0, T0 + 100_000 + s, payload(2, 8))
            .await;
        // What a live reader asks after each commit: what follows the one it has.
        let tail = catalog
            .fragments_after(feed.stream, committed.iter().rev().nth(1).copied(), 10)
            .await
            .unwrap();
        let from = committed.len() - 1;
        assert_eq!(numbers(&tail), committed[from..], "after commit {i}");
    }
    let all = catalog
        .fragments_after(feed.stream, None, 100)
        .await
        .unwrap();
    assert_eq!(numbers(&all), committed);
    assert_eq!(
        all.iter().map(|f| f.sequence).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(
        numbers(&catalog.fragments_after(feed.stream, None, 2).await.unwrap()),
        committed[..2]
    );
    assert_eq!(
        numbers(
            &catalog
                .fragments_after(feed.stream, Some(committed[1]), 2)
                .await
                .unwrap()
        ),
        committed[2..4]
    );
    // A number between two stored ones (or gone to retention) is a position all the same.
    let between = FragmentNumber(committed[2].0 - 1);
    assert_eq!(
        numbers(
            &catalog
                .fragments_after(feed.stream, Some(between), 10)
                .await
                .unwrap()
        ),
        committed[2..]
    );
    assert!(catalog
        .fragments_after(feed.stream, Some(committed[4]), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(catalog
        .fragments_after(feed.stream, Some(FragmentNumber(0)), 0)
        .await
        .unwrap()
        .is_empty());
    // Full records: what GetMedia reads the media of.
    for f in &all {
        assert_eq!(
            catalog.fragment(f.stream, f.number).await.unwrap().as_ref(),
            Some(f)
        );
    }
}

pub async fn latest_fragments_are_the_live_edge_in_ingest_order(b: &mut dyn Backend) {
    let (catalog, _, archive) = open(b);
    let mut feed = Feed::new(&*catalog, "live").await;
    let mut noise = Feed::new(&*catalog, "live-noise").await;
    assert!(catalog
        .latest_fragments(feed.stream, 5)
        .await
        .unwrap()
        .is_empty());
    let mut committed = Vec::new();
    // Server time going backwards: the edge is by ingest order (number), not by timestamp.
    for (i, s) in [3000, 1000, 2000, 500, 4000].into_iter().enumerate() {
        committed.push(
            feed.put(&archive, T0 + 1000 * i as i64, T0 + s, payload(1, 8))
                .await,
        );
        noise
            .put(&archive, T0, T0 + 100_000 + s, payload(2, 8))
            .await;
        let edge = catalog.latest_fragments(feed.stream, 3).await.unwrap();
        let from = committed.len().saturating_sub(3);
        assert_eq!(numbers(&edge), committed[from..], "after commit {i}");
    }
    assert_eq!(
        numbers(&catalog.latest_fragments(feed.stream, 1).await.unwrap()),
        committed[4..]
    );
    assert_eq!(
        numbers(&catalog.latest_fragments(feed.stream, 100).await.unwrap()),
        committed
    );
    assert!(catalog
        .latest_fragments(feed.stream, 0)
        .await
        .unwrap()
        .is_empty());
    let edge = catalog.latest_fragments(feed.stream, 5).await.unwrap();
    assert_eq!(
        edge.iter().map(|f| f.sequence).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_last_number(&*catalog, feed.stream, committed.last()).await;
}

pub async fn sequence_and_continuity_are_decided_at_commit(b: &mut dyn Backend) {
    use store::Continuity as C;
    let (catalog, _, archive) = open(b);
    let s = catalog
        .create_stream(new_stream("continuity"))
        .await
        .unwrap();
    let c1 = config_id(&*catalog, s.id, video(1, b"a")).await;
    let c2 = config_id(&*catalog, s.id, video(1, b"b")).await;
    let aac = config_id(&*catalog, s.id, audio(2, b"\x12\x10")).await;
    // (producer start, server start, tracks); every fragment lasts 1000 ms.
    let v = |c| vec![(1, c, payload(1, 4))];
    let plan: [(i64, i64, Vec<Track>); 8] = [
        (0, 100_000, v(c1)),
        (1000, 101_000, v(c1)),
        (2100, 102_010, v(c1)), // producer gap 100 ms; server 10 ms: no gap
        (6000, 102_990, v(c1)), // producer +2.9 s (pause); server overlaps by 20 ms
        (7000, 104_000, v(c2)), // codec change: every flag
        (8000, 105_051, v(c2)), // server gap 51 ms only
        (9000, 108_100, v(c2)), // server +2.049 s: a pause on the server clock alone
        (
            10_000,
            109_100,
            vec![(1, c2, payload(1, 4)), (2, aac, payload(2, 4))],
        ), // a track added
    ];
    // Submitted together, so a backend that commits a batch at once must advance its state
    // fragment by fragment inside the batch.
    let mut waits = Vec::new();
    let mut last = None;
    for (p, sv, tracks) in plan {
        let number = FragmentNumber::next(last, Timestamp(T0 + sv));
        last = Some(number);
        let f = fragment(s.id, number, T0 + p, T0 + sv, &tracks);
        waits.push(archive.submit(f).await.unwrap());
    }
    for w in waits {
        w.await.unwrap().unwrap();
    }
    let frags = catalog.latest_fragments(s.id, 10).await.unwrap();
    assert_eq!(
        frags.iter().map(|f| f.sequence).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5, 6, 7]
    );
    let all = C::CODEC_CHANGE | C::PRODUCER_GAP | C::SERVER_GAP | C::PAUSE;
    assert_eq!(
        frags.iter().map(|f| f.continuity.flags).collect::<Vec<_>>(),
        [
            0,
            0,
            C::PRODUCER_GAP,
            C::PRODUCER_GAP | C::PAUSE,
            all,
            C::SERVER_GAP,
            C::SERVER_GAP | C::PAUSE,
            all,
        ]
    );
    let counts = |f: &FragmentRecord| {
        [C::CODEC_CHANGE, C::PRODUCER_GAP, C::SERVER_GAP, C::PAUSE]
            .map(|flag| f.continuity.count(flag))
    };
    assert_eq!(
        frags.iter().map(counts).collect::<Vec<_>>(),
        [
            [0, 0, 0, 0],
            [0, 0, 0, 0],
            [0, 1, 0, 0],
            [0, 2, 0, 1],
            [1, 3, 1, 2],
            [1, 3, 2, 2],
            [1, 3, 3, 3],
            [2, 4, 4, 4],
        ]
    );
    // What the queries return is the same record.
    let by_number = catalog
        .fragment(s.id, frags[6].number)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_number, frags[6]);
}

// ---- media ----------------------------------------------------------------------------------

pub async fn media_reads_are_byte_exact_by_range(b: &mut dyn Backend) {
    let (catalog, media, archive) = open(b);
    let (s, v, a) = video_and_audio(&*catalog, "bytes").await;
    let mut last = None;
    let mut stored = Vec::new();
    // Larger than a page, a small one, and one of a single byte per track.
    for (i, (vlen, alen)) in [(300_001, 4099), (17, 3), (1, 1)].into_iter().enumerate() {
        let (vb, ab) = (payload(10 + i as u8, vlen), payload(20 + i as u8, alen));
        let number = FragmentNumber::next(last, Timestamp(T0 + 1000 * i as i64));
        last = Some(number);
        let f = fragment(
            s.id,
            number,
            T0,
            T0 + 1000 * i as i64,
            &[(1, v, vb.clone()), (2, a, ab.clone())],
        );
        archive.persist(f).await.unwrap();
        stored.push((number, vb, ab));
    }
    for (number, vb, ab) in &stored {
        let f = catalog.fragment(s.id, *number).await.unwrap().unwrap();
        let whole = [&vb[..], &ab[..]].concat();
        assert_eq!(f.media.len, whole.len() as u64);
        assert_eq!(read_all(&*media, &f).await, whole);
        for (t, bytes) in f.tracks.iter().zip([vb, ab]) {
            let got = media
                .read(s.id, f.media, t.data_offset..t.data_offset + t.data_len)
                .await
                .unwrap();
            assert_eq!(&got, bytes, "track {:?}", t.track);
        }
        let n = f.media.len;
        assert_eq!(media.read(s.id, f.media, 0..1).await.unwrap(), whole[..1]);
        assert_eq!(
            media.read(s.id, f.media, n - 1..n).await.unwrap(),
            whole[n as usize - 1..]
        );
        if n > 4 {
            assert_eq!(
                media.read(s.id, f.media, 2..n - 2).await.unwrap(),
                whole[2..n as usize - 2]
            );
        }
        // A read never leaves its fragment.
        assert!(media.read(s.id, f.media, 0..n + 1).await.is_err());
        assert!(media.read(s.id, f.media, n..n + 1).await.is_err());
    }

    // The media store on its own: appends do not overlap, and sync makes them readable.
    let parts = |seed| vec![payload(seed, 3), Bytes::new(), payload(seed + 1, 70_000)];
    let expect = |seed| [&payload(seed, 3)[..], &payload(seed + 1, 70_000)[..]].concat();
    let mut locations = media
        .append_many(vec![(s.id, parts(40)), (s.id, parts(50))])
        .await;
    let l2 = locations.pop().unwrap().unwrap();
    let l1 = locations.pop().unwrap().unwrap();
    let l3 = media.append(s.id, parts(60)).await.unwrap();
    media.sync().await.unwrap();
    for (loc, seed) in [(l1, 40), (l2, 50), (l3, 60)] {
        assert_eq!(loc.len, 70_003);
        assert_eq!(
            media.read(s.id, loc, 0..loc.len).await.unwrap(),
            expect(seed)
        );
    }
}

pub async fn retention_deletes_old_fragments_and_keeps_the_rest(b: &mut dyn Backend) {
    let (catalog, media, archive) = open(b);
    let mut feed = Feed::new(&*catalog, "retention").await;
    let mut other = Feed::new(&*catalog, "retention-other").await;
    let mut committed = Vec::new();
    for i in 0..6u8 {
        let server = T0 + 1000 * i64::from(i);
        committed.push(
            feed.put(&archive, T0 - 50_000, server, payload(i, 2000))
                .await,
        );
        other.put(&archive, T0, server, payload(100 + i, 50)).await;
    }
    let records: Vec<FragmentRecord> = {
        let mut v = Vec::new();
        for n in &committed {
            v.push(catalog.fragment(feed.stream, *n).await.unwrap().unwrap());
        }
        v
    };

    // Strictly before the cutoff: the fragment starting at the cutoff stays.
    let mut reported = BTreeSet::new();
    media.begin_delete(feed.stream).await;
    let segments = catalog
        .delete_fragments_before(feed.stream, Timestamp(T0 + 2000))
        .await
        .unwrap();
    let kept_segments: BTreeSet<u64> = records[2..].iter().map(|f| f.media.segment).collect();
    assert!(
        segments.iter().all(|s| !kept_segments.contains(s)),
        "{segments:?} holds a kept fragment's bytes"
    );
    media.delete_segments(feed.stream, &segments).await.unwrap();
    reported.extend(segments);
    for f in &records[..2] {
        assert_eq!(catalog.fragment(feed.stream, f.number).await.unwrap(), None);
    }
    let q = whole_range(feed.stream, TimestampKind::Server);
    assert_eq!(
        numbers(&catalog.query_fragments(q.clone()).await.unwrap()),
        committed[2..]
    );
    let producer = FragmentQuery {
        kind: TimestampKind::Producer,
        ..q.clone()
    };
    assert_eq!(
        numbers(&catalog.query_fragments(producer).await.unwrap()),
        committed[2..]
    );
    assert_eq!(
        numbers(&catalog.latest_fragments(feed.stream, 100).await.unwrap()),
        committed[2..]
    );
    for (i, f) in records.iter().enumerate().skip(2) {
        assert_stored(&*catalog, &*media, f, payload(i as u8, 2000)).await;
    }
    // Another stream is untouched.
    assert_eq!(
        catalog
            .latest_fragments(other.stream, 100)
            .await
            .unwrap()
            .len(),
        6
    );

    // Everything: every segment the stream's fragments used has now been reported, and the last
    // number and the sequence go on.
    media.begin_delete(feed.stream).await;
    let segments = catalog
        .delete_fragments_before(feed.stream, Timestamp(T0 + 60_000))
        .await
        .unwrap();
    media.delete_segments(feed.stream, &segments).await.unwrap();
    reported.extend(segments);
    let used: BTreeSet<u64> = records.iter().map(|f| f.media.segment).collect();
    assert!(
        used.is_subset(&reported),
        "used {used:?}, reported {reported:?}"
    );
    assert!(catalog.query_fragments(q).await.unwrap().is_empty());
    assert!(catalog
        .latest_fragments(feed.stream, 10)
        .await
        .unwrap()
        .is_empty());
    assert_last_number(&*catalog, feed.stream, committed.last()).await;
    let stale = fragment(
        feed.stream,
        committed[5],
        T0,
        T0 + 70_000,
        &[(1, feed.config, payload(7, 9))],
    );
    assert!(
        archive.persist(stale).await.is_err(),
        "numbers keep increasing after retention"
    );
    let n = feed.put(&archive, T0, T0 + 70_000, payload(7, 9)).await;
    assert!(n > committed[5]);
    let f = catalog.fragment(feed.stream, n).await.unwrap().unwrap();
    assert_eq!(f.sequence, 6, "the sequence goes on after retention");
    assert_eq!(read_all(&*media, &f).await, payload(7, 9));
    // The other stream's bytes survived the deletes of this one's segments.
    for f in catalog.latest_fragments(other.stream, 100).await.unwrap() {
        assert_eq!(read_all(&*media, &f).await.len(), 50);
    }
}

/// Appends a fragment's bytes and syncs them, as the archive does before the catalog commit;
/// returns its row, pointing at them, not yet committed.
async fn append_uncommitted(media: &dyn MediaStore, f: PendingFragment) -> NewFragment {
    let mut row = f.row;
    row.media = media.append(row.stream, f.parts).await.unwrap();
    media.sync().await.unwrap();
    row
}

/// Commits `row` and settles its append, as the archive does; returns the stored record.
async fn commit(catalog: &dyn Catalog, media: &dyn MediaStore, row: NewFragment) -> FragmentRecord {
    let (stream, number, location) = (row.stream, row.number, row.media);
    catalog.insert_fragments(vec![row]).await.unwrap();
    media.settle(stream, location, true).await;
    catalog.fragment(stream, number).await.unwrap().unwrap()
}

/// One retention pass over `stream`, as the server's retention task runs it; returns the
/// segments the catalog reported.
async fn retention_pass(
    catalog: &dyn Catalog,
    media: &dyn MediaStore,
    stream: StreamId,
    cutoff: i64,
) -> Vec<u64> {
    media.begin_delete(stream).await;
    let segments = catalog
        .delete_fragments_before(stream, Timestamp(cutoff))
        .await
        .unwrap();
    media.delete_segments(stream, &segments).await.unwrap();
    segments
}

/// A stream with one committed fragment (server time T0), the next fragment appended and synced
/// but not committed, and a retention pass in between that expires the committed one (whose
/// segment the catalog reports). Returns the stream's feed, the expired record and the pending row.
async fn an_append_in_flight_during_retention(
    catalog: &dyn Catalog,
    media: &dyn MediaStore,
    archive: &Archive,
    name: &str,
) -> (Feed, FragmentRecord, NewFragment) {
    let mut feed = Feed::new(catalog, name).await;
    let n = feed.put(archive, T0, T0, payload(1, 3000)).await;
    let old = catalog.fragment(feed.stream, n).await.unwrap().unwrap();
    let row = append_uncommitted(media, feed.next(T0, T0 + 60_000, payload(2, 3000))).await;
    let reported = retention_pass(catalog, media, feed.stream, T0 + 1).await;
    assert_eq!(reported, [old.media.segment]);
    assert_eq!(catalog.fragment(feed.stream, n).await.unwrap(), None);
    (feed, old, row)
}

/// docs/architecture.md#deletes-and-retention: retention between a fragment's append and its
/// commit must not delete the bytes the row is about to point at, neither when the whole pass
/// runs in between nor when the commit lands between the catalog's answer and the media delete.
/// The stream's only committed rows expire meanwhile, so the catalog reports the segment the
/// append went to (the embedded store's current segment file) as unreferenced.
pub async fn retention_never_deletes_bytes_an_uncommitted_append_wrote(b: &mut dyn Backend) {
    let (catalog, media, archive) = open(b);
    // The whole retention pass runs between append and commit.
    let (mut feed, _, row) =
        an_append_in_flight_during_retention(&*catalog, &*media, &archive, "in-flight").await;
    let f = commit(&*catalog, &*media, row).await;
    assert_stored(&*catalog, &*media, &f, payload(2, 3000)).await;

    // The commit lands between the catalog's answer and the media delete.
    let row = append_uncommitted(&*media, feed.next(T0, T0 + 120_000, payload(3, 3000))).await;
    media.begin_delete(feed.stream).await;
    let reported = catalog
        .delete_fragments_before(feed.stream, Timestamp(T0 + 60_001))
        .await
        .unwrap();
    assert_eq!(reported, [f.media.segment]);
    let g = commit(&*catalog, &*media, row).await;
    media.delete_segments(feed.stream, &reported).await.unwrap();
    assert_stored(&*catalog, &*media, &g, payload(3, 3000)).await;

    // Later passes keep it while its row is there, and the archive goes on.
    assert!(retention_pass(&*catalog, &*media, feed.stream, T0 + 60_001)
        .await
        .is_empty());
    assert_stored(&*catalog, &*media, &g, payload(3, 3000)).await;
    let n = feed.put(&archive, T0, T0 + 180_000, payload(4, 3000)).await;
    let h = catalog.fragment(feed.stream, n).await.unwrap().unwrap();
    assert_stored(&*catalog, &*media, &g, payload(3, 3000)).await;
    assert_stored(&*catalog, &*media, &h, payload(4, 3000)).await;
}

/// A segment whose deletion retention had to defer (an append to it was not settled) is deleted
/// by a later pass once that append is settled as not committed, with nothing new reported.
pub async fn a_deferred_segment_deletion_happens_once_nothing_is_in_flight(b: &mut dyn Backend) {
    let (catalog, media, archive) = open(b);
    let (mut feed, old, row) =
        an_append_in_flight_during_retention(&*catalog, &*media, &archive, "deferred").await;
    // Whatever the append wrote stays while its row may still be committed.
    assert_eq!(
        media
            .read(feed.stream, row.media, 0..row.media.len)
            .await
            .unwrap(),
        payload(2, 3000)
    );

    // The commit failed: no row will point at it, and the next pass deletes what was deferred.
    media.settle(feed.stream, row.media, false).await;
    assert!(retention_pass(&*catalog, &*media, feed.stream, T0 + 1)
        .await
        .is_empty());
    assert!(
        media
            .read(feed.stream, old.media, 0..old.media.len)
            .await
            .is_err(),
        "segment {} outlived its last row and its failed append",
        old.media.segment
    );

    // Ingest goes on, into a segment that exists.
    let n = feed.put(&archive, T0, T0 + 120_000, payload(3, 3000)).await;
    let f = catalog.fragment(feed.stream, n).await.unwrap().unwrap();
    assert_stored(&*catalog, &*media, &f, payload(3, 3000)).await;
}

pub async fn streams_do_not_see_each_others_fragments(b: &mut dyn Backend) {
    let (catalog, media, archive) = open(b);
    let mut a = Feed::new(&*catalog, "iso-a").await;
    let mut z = Feed::new(&*catalog, "iso-z").await;
    // Interleaved, with the same timestamps, so only the stream tells them apart.
    let mut fa = Vec::new();
    let mut fz = Vec::new();
    for i in 0..4i64 {
        fa.push(
            a.put(&archive, T0 + 1000 * i, T0 + 1000 * i, payload(1, 64))
                .await,
        );
        fz.push(
            z.put(&archive, T0 + 1000 * i, T0 + 1000 * i, payload(2, 64))
                .await,
        );
    }
    for (feed, mine, seed) in [(&a, &fa, 1), (&z, &fz, 2)] {
        let latest = catalog.latest_fragments(feed.stream, 100).await.unwrap();
        assert_eq!(numbers(&latest), *mine);
        assert_eq!(
            latest.iter().map(|f| f.sequence).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        for f in &latest {
            assert_eq!(read_all(&*media, f).await, payload(seed, 64));
        }
        let q = FragmentQuery {
            stream: feed.stream,
            kind: TimestampKind::Producer,
            start: Timestamp(T0),
            end: Timestamp(T0 + 3000),
            after: None,
            limit: 100,
        };
        assert_eq!(numbers(&catalog.query_fragments(q).await.unwrap()), *mine);
        assert_last_number(&*catalog, feed.stream, mine.last()).await;
    }
}

/// docs/architecture.md#group-commit: one bad row does not fail the others of its batch.
pub async fn a_fragment_of_a_deleted_stream_fails_alone(b: &mut dyn Backend) {
    let (catalog, _, archive) = open(b);
    let mut live = Feed::new(&*catalog, "alive").await;
    let mut dead = Feed::new(&*catalog, "dead").await;
    catalog.delete_stream(dead.stream, None).await.unwrap();
    let mut waits = Vec::new();
    for i in 0..20i64 {
        let f = live.next(T0 + 1000 * i, T0 + 1000 * i, payload(1, 100));
        waits.push((true, archive.submit(f).await.unwrap()));
        let f = dead.next(T0 + 1000 * i, T0 + 1000 * i, payload(2, 100));
        waits.push((false, archive.submit(f).await.unwrap()));
    }
    let mut ok = Vec::new();
    for (alive, w) in waits {
        let result = w.await.unwrap();
        if alive {
            ok.push(result.unwrap());
        } else {
            assert!(result.is_err(), "a fragment of a deleted stream is refused");
        }
    }
    assert_eq!(
        numbers(&catalog.latest_fragments(live.stream, 100).await.unwrap()),
        ok
    );
    assert_last_number(&*catalog, live.stream, ok.last()).await;
    assert!(catalog.stream_by_id(dead.stream).await.unwrap().is_none());
    assert!(!matches!(catalog.latest_fragments(dead.stream, 100).await, Ok(v) if !v.is_empty()));
    let mut row = dead.next(T0 + 99_000, T0 + 99_000, payload(2, 1)).row;
    row.media = catalog
        .fragment(live.stream, ok[0])
        .await
        .unwrap()
        .unwrap()
        .media;
    assert!(catalog.insert_fragments(vec![row]).await.is_err());
}

/// `insert_fragments` is one transaction: a batch with a refused fragment stores none of it (no
/// row, no sequence, no continuity state), and the archive then commits the others one by one.
pub async fn a_batch_is_committed_whole_or_not_at_all(b: &mut dyn Backend) {
    let (catalog, media, archive) = open(b);
    let mut feed = Feed::new(&*catalog, "batch").await;
    let n0 = feed.put(&archive, T0, T0, payload(0, 10)).await;
    let row = |number: FragmentNumber, ms: i64, location: MediaLocation| {
        let mut f = fragment(
            feed.stream,
            number,
            ms,
            ms,
            &[(1, feed.config, payload(1, 10))],
        );
        f.row.media = location;
        f.row
    };
    let location = media
        .append(feed.stream, vec![payload(1, 10)])
        .await
        .unwrap();
    media.sync().await.unwrap();
    let good = row(FragmentNumber(n0.0 + 10), T0 + 1000, location);
    let refused = row(n0, T0 + 2000, location);
    assert!(catalog
        .insert_fragments(vec![good.clone(), refused])
        .await
        .is_err());
    assert_last_number(&*catalog, feed.stream, Some(&n0)).await;
    assert_eq!(
        catalog.fragment(feed.stream, good.number).await.unwrap(),
        None
    );
    let stored = catalog.latest_fragments(feed.stream, 10).await.unwrap();
    assert_eq!(numbers(&stored), [n0]);

    // The refused batch took no sequence and moved no edge: `good` follows n0 seamlessly.
    assert_eq!(
        catalog.insert_fragments(vec![good.clone()]).await.unwrap(),
        [good.number]
    );
    let f = catalog
        .fragment(feed.stream, good.number)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((f.sequence, f.continuity), (1, Continuity::default()));
    assert_eq!(read_all(&*media, &f).await, payload(1, 10));

    // Through the archive, submitted together: the refused one fails, its neighbours commit.
    feed.last = Some(good.number);
    let before = feed.next(T0 + 2000, T0 + 2000, payload(2, 10));
    let mut stale = feed.next(T0 + 3000, T0 + 3000, payload(3, 10));
    stale.row.number = n0;
    let after = feed.next(T0 + 4000, T0 + 4000, payload(4, 10));
    let mut waits = Vec::new();
    for f in [before, stale, after] {
        waits.push(archive.submit(f).await.unwrap());
    }
    let mut results = Vec::new();
    for w in waits {
        results.push(w.await.unwrap());
    }
    assert!(results[1].is_err());
    let committed = [results.remove(0).unwrap(), results.remove(1).unwrap()];
    let latest = catalog.latest_fragments(feed.stream, 2).await.unwrap();
    assert_eq!(numbers(&latest), committed);
    let sequences: Vec<u64> = latest.iter().map(|f| f.sequence).collect();
    assert_eq!(sequences, [2, 3]);
    for (f, seed) in latest.iter().zip([2, 4]) {
        assert_eq!(read_all(&*media, f).await, payload(seed, 10));
    }
}

/// docs/architecture.md#group-commit: fragments submitted faster than they commit spread over
/// batches, two in flight at once (one writing media, one committing rows). A stream's still
/// commit in the order they were submitted (a later batch committing first would have its
/// numbers refused), a refused one fails alone, and the next of its stream follows the last
/// committed one.
pub async fn back_to_back_fragments_commit_in_submission_order(b: &mut dyn Backend) {
    let (catalog, media, archive) = open(b);
    let mut feeds = Vec::new();
    for i in 0..4 {
        feeds.push(Feed::new(&*catalog, &format!("back-to-back-{i}")).await);
    }
    let first = feeds[0].put(&archive, T0, T0, payload(0, 100)).await;
    let mut waits = Vec::new();
    for round in 1..=25i64 {
        for (i, feed) in feeds.iter_mut().enumerate() {
            let ms = T0 + 1000 * round;
            let f = feed.next(ms, ms, payload(round as u8, 100 + i));
            waits.push((i, Some(f.row.number), archive.submit(f).await.unwrap()));
        }
        if round == 10 {
            // A stale number in the middle of stream 0's run.
            let stale = fragment(
                feeds[0].stream,
                first,
                T0 + 10_500,
                T0 + 10_500,
                &[(1, feeds[0].config, payload(99, 10))],
            );
            waits.push((0, None, archive.submit(stale).await.unwrap()));
        }
    }
    let mut committed = vec![Vec::new(); feeds.len()];
    committed[0].push(first);
    for (i, number, w) in waits {
        match (number, w.await.unwrap()) {
            (Some(expected), Ok(n)) => {
                assert_eq!(n, expected);
                committed[i].push(n);
            }
            (None, result) => assert!(result.is_err(), "a stale number is refused"),
            (Some(expected), Err(e)) => panic!("{expected} of stream {i} failed: {e}"),
        }
    }
    for (feed, committed) in feeds.iter().zip(&committed) {
        let stored = catalog.latest_fragments(feed.stream, 100).await.unwrap();
        assert_eq!(numbers(&stored), *committed);
        let sequences: Vec<u64> = stored.iter().map(|f| f.sequence).collect();
        let expected: Vec<u64> = (0..committed.len() as u64).collect();
        assert_eq!(
            sequences, expected,
            "no sequence taken by a refused fragment"
        );
        assert!(stored.iter().all(|f| f.continuity == Continuity::default()));
        assert_last_number(&*catalog, feed.stream, committed.last()).await;
    }
    let last = catalog.latest_fragments(feeds[3].stream, 1).await.unwrap();
    assert_eq!(read_all(&*media, &last[0]).await, payload(25, 103));
}

// ---- restart --------------------------------------------------------------------------------

pub async fn a_reopened_store_keeps_everything_committed(b: &mut dyn Backend) {
    use store::Continuity as C;
    let (catalog, media, archive) = open(b);
    let mut feed = Feed::new(&*catalog, "durable").await;
    let stream = catalog
        .update_stream(
            feed.stream,
            Some("v1"),
            StreamUpdate {
                set_tags: vec![("k".into(), "v".into())],
                new_version: "v2".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let a = config_id(&*catalog, feed.stream, audio(2, b"\x12\x10")).await;
    let configs = catalog.codec_configs(feed.stream).await.unwrap();
    for i in 0..3i64 {
        feed.put(
            &archive,
            T0 + 1000 * i,
            T0 + 1000 * i,
            payload(i as u8, 1000),
        )
        .await;
    }
    let before = catalog.latest_fragments(feed.stream, 10).await.unwrap();
    let last = feed.last;
    drop((archive, catalog, media));

    if !b.reopen().await {
        return;
    }
    let (catalog, media) = (b.catalog(), b.media());
    assert_eq!(
        catalog.stream_by_name("durable").await.unwrap(),
        Some(stream.clone())
    );
    assert_eq!(
        catalog.stream_by_arn(&stream.arn).await.unwrap(),
        Some(stream.clone())
    );
    assert_eq!(catalog.codec_configs(feed.stream).await.unwrap(), configs);
    assert_eq!(
        config_id(&*catalog, feed.stream, audio(2, b"\x12\x10")).await,
        a,
        "an unchanged config keeps its row across a restart"
    );
    assert_eq!(
        catalog.latest_fragments(feed.stream, 10).await.unwrap(),
        before
    );
    assert_last_number(&*catalog, feed.stream, last.as_ref()).await;
    for (i, f) in before.iter().enumerate() {
        assert_stored(&*catalog, &*media, f, payload(i as u8, 1000)).await;
    }

    // Ingest goes on where it stopped: numbers, sequence and continuity (a 5 s pause).
    let archive = Archive::new(catalog.clone(), media.clone());
    let stale = fragment(
        feed.stream,
        last.unwrap(),
        T0,
        T0 + 9000,
        &[(1, feed.config, payload(9, 9))],
    );
    assert!(archive.persist(stale).await.is_err());
    let n = feed
        .put(&archive, T0 + 8000, T0 + 8000, payload(9, 9))
        .await;
    let f = catalog.fragment(feed.stream, n).await.unwrap().unwrap();
    assert_eq!(f.sequence, 3);
    assert_eq!(
        f.continuity.flags,
        C::PRODUCER_GAP | C::SERVER_GAP | C::PAUSE
    );
    assert_eq!(f.continuity.count(C::PAUSE), 1);
    assert_eq!(f.continuity.count(C::CODEC_CHANGE), 0);
    assert_eq!(read_all(&*media, &f).await, payload(9, 9));
    for (i, f) in before.iter().enumerate() {
        assert_eq!(read_all(&*media, f).await, payload(i as u8, 1000));
    }
}

// ---- scale-out: docs/architecture.md#writer-lease ---------------------------------------------

/// Short, so expiry is seen quickly; the waits below are several times longer.
const SHORT_TTL: Duration = Duration::from_millis(200);
const LONG_TTL: Duration = Duration::from_secs(60);

/// [`Catalog::acquire_writer_lease`] on a stream that exists.
async fn acquire(
    catalog: &dyn Catalog,
    stream: StreamId,
    holder: &str,
    ttl: Duration,
) -> Option<WriterLease> {
    catalog
        .acquire_writer_lease(stream, holder, ttl)
        .await
        .unwrap()
}

pub async fn a_writer_lease_is_exclusive_until_it_expires(b: &mut dyn Backend) {
    let catalog = b.catalog();
    let s = catalog.create_stream(new_stream("leased")).await.unwrap();
    let other = catalog.create_stream(new_stream("other")).await.unwrap();
    assert!(!catalog.has_writer(s.id).await.unwrap());
    let first = acquire(&*catalog, s.id, "node-a", SHORT_TTL)
        .await
        .expect("a stream without a lease is granted one");
    assert!(catalog.has_writer(s.id).await.unwrap());
    assert!(!catalog.has_writer(other.id).await.unwrap());
    assert_eq!(first.stream, s.id);
    assert!(first.epoch >= 1);
    assert_eq!(
        acquire(&*catalog, s.id, "node-b", SHORT_TTL).await,
        None,
        "held by node-a"
    );
    // Leases are per stream.
    assert!(acquire(&*catalog, other.id, "node-b", SHORT_TTL)
        .await
        .is_some());
    let missing = StreamId(s.id.0.max(other.id.0) + 1000);
    assert!(catalog
        .acquire_writer_lease(missing, "node-b", SHORT_TTL)
        .await
        .is_err());

    // Expired: another holder takes over, with a higher epoch, and the old one cannot renew.
    tokio::time::sleep(SHORT_TTL * 3).await;
    assert!(!catalog.has_writer(s.id).await.unwrap(), "expired");
    let second = acquire(&*catalog, s.id, "node-b", LONG_TTL)
        .await
        .expect("an expired lease is granted again");
    assert!(second.epoch > first.epoch, "{second:?} after {first:?}");
    assert!(!renew(&*catalog, first, LONG_TTL).await.unwrap());
    assert_eq!(acquire(&*catalog, s.id, "node-a", LONG_TTL).await, None);
}

pub async fn a_lease_is_renewed_only_while_its_epoch_is_current(b: &mut dyn Backend) {
    let catalog = b.catalog();
    let s = catalog.create_stream(new_stream("renewed")).await.unwrap();
    let lease = acquire(&*catalog, s.id, "node-a", SHORT_TTL).await.unwrap();
    // Renewed for long: still held well after the first TTL.
    assert!(renew(&*catalog, lease, LONG_TTL).await.unwrap());
    tokio::time::sleep(SHORT_TTL * 3).await;
    assert_eq!(acquire(&*catalog, s.id, "node-b", SHORT_TTL).await, None);
    // Expired but nobody took over: renewing works and holds the stream again.
    assert!(renew(&*catalog, lease, SHORT_TTL).await.unwrap());
    tokio::time::sleep(SHORT_TTL * 3).await;
    assert!(renew(&*catalog, lease, LONG_TTL).await.unwrap());
    assert_eq!(acquire(&*catalog, s.id, "node-b", SHORT_TTL).await, None);
    // A lease of another epoch, or of a stream gone, is not renewed.
    let stale = WriterLease {
        stream: s.id,
        epoch: lease.epoch + 1,
    };
    assert!(!renew(&*catalog, stale, LONG_TTL).await.unwrap());
    catalog.delete_stream(s.id, None).await.unwrap();
    assert!(!renew(&*catalog, lease, LONG_TTL).await.unwrap());
}

/// One lease renewed alone (through the batch call every node uses).
async fn renew(
    catalog: &dyn Catalog,
    lease: WriterLease,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let renewed = catalog.renew_writer_leases(&[lease], ttl).await?;
    assert_eq!(renewed.len(), 1, "one answer per lease");
    Ok(renewed[0] == LeaseRenewal::Renewed)
}

pub async fn leases_are_renewed_together_each_by_its_own_epoch(b: &mut dyn Backend) {
    let catalog = b.catalog();
    assert_eq!(
        catalog.renew_writer_leases(&[], LONG_TTL).await.unwrap(),
        Vec::<LeaseRenewal>::new()
    );
    let a = catalog.create_stream(new_stream("batch-a")).await.unwrap();
    let b2 = catalog.create_stream(new_stream("batch-b")).await.unwrap();
    let c = catalog.create_stream(new_stream("batch-c")).await.unwrap();
    let la = acquire(&*catalog, a.id, "node-a", SHORT_TTL).await.unwrap();
    let lb = acquire(&*catalog, b2.id, "node-a", SHORT_TTL)
        .await
        .unwrap();
    let lc = acquire(&*catalog, c.id, "node-a", SHORT_TTL).await.unwrap();
    // c is taken over once its lease lapses: its old epoch is stale in the batch.
    tokio::time::sleep(SHORT_TTL * 3).await;
    let lc2 = acquire(&*catalog, c.id, "node-b", LONG_TTL).await.unwrap();
    let stale_a = WriterLease {
        stream: a.id,
        epoch: la.epoch + 1,
    };
    let gone = WriterLease {
        stream: StreamId(a.id.0.max(b2.id.0).max(c.id.0) + 1000),
        epoch: 1,
    };
    // Answers in the order asked, expired-but-current ones renewed, the rest not.
    assert_eq!(
        catalog
            .renew_writer_leases(&[lb, lc, stale_a, gone, la], LONG_TTL)
            .await
            .unwrap(),
        {
            use LeaseRenewal::*;
            vec![Renewed, Lost, Lost, Lost, Renewed]
        }
    );
    // The renewed ones hold their streams again; the takeover of c stands.
    assert_eq!(acquire(&*catalog, a.id, "node-b", SHORT_TTL).await, None);
    assert_eq!(acquire(&*catalog, b2.id, "node-b", SHORT_TTL).await, None);
    assert!(renew(&*catalog, lc2, LONG_TTL).await.unwrap());
    assert!(!renew(&*catalog, lc, LONG_TTL).await.unwrap());
}

pub async fn a_released_lease_can_be_taken_at_once(b: &mut dyn Backend) {
    let catalog = b.catalog();
    let s = catalog.create_stream(new_stream("released")).await.unwrap();
    let first = acquire(&*catalog, s.id, "node-a", LONG_TTL).await.unwrap();
    catalog.release_writer_lease(first).await.unwrap();
    assert!(!catalog.has_writer(s.id).await.unwrap(), "released");
    let second = acquire(&*catalog, s.id, "node-b", LONG_TTL)
        .await
        .expect("a released lease is free at once");
    assert!(second.epoch > first.epoch);
    // Releasing an epoch that is no longer current changes nothing.
    catalog.release_writer_lease(first).await.unwrap();
    assert_eq!(acquire(&*catalog, s.id, "node-c", LONG_TTL).await, None);
    assert!(renew(&*catalog, second, LONG_TTL).await.unwrap());
}

/// docs/architecture.md#writer-lease: a writer paused across a takeover can never commit.
pub async fn a_fragment_under_a_lost_lease_is_refused(b: &mut dyn Backend) {
    let (catalog, media, archive) = open(b);
    let mut feed = Feed::new(&*catalog, "fenced").await;
    let old = acquire(&*catalog, feed.stream, "node-a", LONG_TTL)
        .await
        .unwrap();
    let mut f = feed.next(T0, T0, payload(1, 100));
    f.row.writer_epoch = Some(old.epoch);
    let n1 = archive.persist(f).await.unwrap();

    // node-a pauses; its lease ends (released here, expiry works the same) and node-b takes over.
    catalog.release_writer_lease(old).await.unwrap();
    let new = acquire(&*catalog, feed.stream, "node-b", LONG_TTL)
        .await
        .unwrap();
    let stale_row = append_uncommitted(&*media, {
        let mut f = feed.next(T0 + 1000, T0 + 1000, payload(2, 100));
        f.row.writer_epoch = Some(old.epoch);
        f
    })
    .await;
    assert!(catalog
        .insert_fragments(vec![stale_row.clone()])
        .await
        .is_err());
    media.settle(feed.stream, stale_row.media, false).await;
    assert_eq!(
        catalog
            .fragment(feed.stream, stale_row.number)
            .await
            .unwrap(),
        None
    );
    assert_last_number(&*catalog, feed.stream, Some(&n1)).await;
    assert_eq!(
        numbers(&catalog.latest_fragments(feed.stream, 10).await.unwrap()),
        [n1]
    );

    // The current epoch commits, and takes the next sequence: the refused row left no trace.
    let mut f = feed.next(T0 + 2000, T0 + 2000, payload(3, 100));
    f.row.writer_epoch = Some(new.epoch);
    let n2 = archive.persist(f).await.unwrap();
    let stored = catalog.fragment(feed.stream, n2).await.unwrap().unwrap();
    assert_eq!(stored.sequence, 1);
    // No epoch: not checked.
    let n3 = feed
        .put(&archive, T0 + 3000, T0 + 3000, payload(4, 100))
        .await;
    assert_eq!(
        numbers(&catalog.latest_fragments(feed.stream, 10).await.unwrap()),
        [n1, n2, n3]
    );
}

pub async fn media_epochs_are_never_repeated(b: &mut dyn Backend) {
    let catalog = b.catalog();
    let mut seen = BTreeSet::new();
    let mut last = 0;
    for _ in 0..10 {
        let e = catalog.allocate_media_epoch().await.unwrap();
        assert!((1..1 << 31).contains(&e), "{e}");
        assert!(e > last, "{e} after {last}");
        last = e;
        assert!(seen.insert(e), "{e} twice");
    }
    // Concurrent callers (nodes) get distinct ones.
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let catalog = catalog.clone();
            tokio::spawn(async move { catalog.allocate_media_epoch().await.unwrap() })
        })
        .collect();
    for h in handles {
        let e = h.await.unwrap();
        assert!(seen.insert(e), "{e} twice");
    }
    drop(catalog);
    // And a restart never hands out an earlier one again.
    if b.reopen().await {
        let e = b.catalog().allocate_media_epoch().await.unwrap();
        assert!(seen.insert(e), "{e} again after a restart");
    }
}

/// docs/architecture.md#pending-media-and-orphan-collection.
pub async fn pending_media_is_listed_until_its_fragment_commits(b: &mut dyn Backend) {
    let (catalog, media, _) = open(b);
    let mut feed = Feed::new(&*catalog, "pending").await;
    let gone = Feed::new(&*catalog, "gone").await;
    let row = append_uncommitted(&*media, feed.next(T0, T0, payload(1, 100))).await;
    let committed = (feed.stream, row.media.segment);
    let tick = || tokio::time::sleep(Duration::from_millis(5));
    catalog
        .record_pending_media(committed.0, committed.1)
        .await
        .unwrap();
    tick().await;
    catalog
        .record_pending_media(feed.stream, 1 << 40)
        .await
        .unwrap();
    tick().await;
    catalog.record_pending_media(gone.stream, 7).await.unwrap();
    tick().await;
    // The stream goes; its entry stays, so its objects are still collected.
    catalog.delete_stream(gone.stream, None).await.unwrap();
    let all = [committed, (feed.stream, 1 << 40), (gone.stream, 7)];
    let stale = |older_than, limit| {
        let catalog = catalog.clone();
        async move {
            catalog
                .stale_pending_media(older_than, limit)
                .await
                .unwrap()
        }
    };
    assert_eq!(stale(Duration::ZERO, 100).await, all, "oldest first");
    assert_eq!(stale(Duration::ZERO, 2).await, all[..2]);
    assert!(stale(Duration::from_secs(3600), 100).await.is_empty());

    // Committing the row clears its object's entry (same transaction); clear_pending_media
    // clears another.
    commit(&*catalog, &*media, row).await;
    assert_eq!(stale(Duration::ZERO, 100).await, all[1..]);
    catalog
        .clear_pending_media(feed.stream, 1 << 40)
        .await
        .unwrap();
    catalog
        .clear_pending_media(feed.stream, 12345)
        .await
        .unwrap();
    assert_eq!(stale(Duration::ZERO, 100).await, all[2..]);
    catalog.clear_pending_media(gone.stream, 7).await.unwrap();
    assert!(stale(Duration::ZERO, 100).await.is_empty());
}

pub async fn the_first_session_key_stored_wins(b: &mut dyn Backend) {
    let catalog = b.catalog();
    let first = catalog.session_key_or_init([1; 32]).await.unwrap();
    assert_eq!(first, [1; 32]);
    assert_eq!(catalog.session_key_or_init([2; 32]).await.unwrap(), [1; 32]);
    drop(catalog);
    if b.reopen().await {
        assert_eq!(
            b.catalog().session_key_or_init([3; 32]).await.unwrap(),
            [1; 32]
        );
    }
}

/// Waits for `wanted` on `feed` (other changes may come first), at most `within`.
pub async fn announced(
    feed: &mut tokio::sync::broadcast::Receiver<CatalogChange>,
    wanted: CatalogChange,
    within: Duration,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, feed.recv()).await {
            Ok(Ok(change)) if change == wanted => return,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => panic!("change feed: {e} waiting for {wanted:?}"),
            Err(_) => panic!("{wanted:?} not announced within {within:?}"),
        }
    }
}

pub async fn commits_and_stream_changes_are_announced(b: &mut dyn Backend) {
    const WITHIN: Duration = Duration::from_secs(2);
    let (catalog, _, archive) = open(b);
    let mut feed = Feed::new(&*catalog, "announced").await;
    let mut changes = catalog.changes();
    feed.put(&archive, T0, T0, payload(1, 100)).await;
    announced(&mut changes, CatalogChange::Fragments(feed.stream), WITHIN).await;
    catalog
        .update_stream(
            feed.stream,
            None,
            StreamUpdate {
                new_version: "v2".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    announced(&mut changes, CatalogChange::Stream(feed.stream), WITHIN).await;
    catalog
        .delete_fragments_before(feed.stream, Timestamp(T0 + 1))
        .await
        .unwrap();
    announced(&mut changes, CatalogChange::Stream(feed.stream), WITHIN).await;
    catalog.delete_stream(feed.stream, None).await.unwrap();
    announced(&mut changes, CatalogChange::Stream(feed.stream), WITHIN).await;
}
