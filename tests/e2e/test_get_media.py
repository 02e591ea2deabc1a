"""GetMedia and GetMediaForFragmentList with real clients (issue 10): boto3, the AWS CLI, ffmpeg and mkvinfo
read what openkvs sends, and every frame of every chunk is the ingested fixture's, byte for byte.

The payload is parsed with tests/e2e/mkv.py (an EBML walker that shares no code with the server): one EBML
header + Segment per fragment, the KVS tags before and after its Cluster (docs/wire.md#getmedia).
"""

from __future__ import annotations

import math
import json
import re
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

import kvs
import mkv
from conftest import FIXTURES, client_env
from test_players import compare_frames, framemd5, need

FIXTURE = "h264_aac.mkv"
PLAYERS = Path(__file__).parent / "players"
SECONDS = re.compile(r"^\d+\.\d{3}$")


# -- helpers -----------------------------------------------------------------------------------------


def documents(payload: bytes) -> list[dict]:
    """One dict per document of a GetMedia payload: its tags, cluster timecode and frames per track."""
    parsed = mkv.parse(payload)
    out = []
    for i, seg in enumerate(parsed.segments):
        clusters = [c for c in parsed.clusters if c.segment == i]
        tags_before = {}
        tags_after = {}
        producer_after = []
        for before, tags in seg.tags:
            target = tags_before if before == 0 else tags_after
            for name, value in tags:
                if name.startswith("AWS_KINESISVIDEO_"):
                    target[name] = value
                elif before:
                    producer_after.append((name, value))
        frames: dict[int, list[bytes]] = {}
        times: dict[int, list[float]] = {}
        for c in clusters:
            for b, data in mkv.frames_of(payload, c):
                frames.setdefault(b.track, []).append(data)
                times.setdefault(b.track, []).append(c.block_ms(b) - c.timecode_ms)
        out.append({
            "before": tags_before, "after": tags_after, "producer_tags": producer_after,
            "clusters": len(clusters), "frames": frames, "times": times,
            "cluster_ms": clusters[0].timecode_ms if clusters else None,
            "tracks": seg.tracks, "scale": seg.timecode_scale, "offset": seg.ebml_offset,
        })
    return out


def fixture_fragments(name: str = FIXTURE) -> list[dict]:
    """Per cluster of the fixture (every segment): frames and times (ms from the cluster's timecode) per
    track, and the tracks of its segment."""
    buf = (FIXTURES / name).read_bytes()
    parsed = mkv.parse(buf)
    out = []
    for c in parsed.complete_clusters:
        frames: dict[int, list[bytes]] = {}
        times: dict[int, list[float]] = {}
        for b, data in mkv.frames_of(buf, c):
            frames.setdefault(b.track, []).append(data)
            times.setdefault(b.track, []).append(c.block_ms(b) - c.timecode_ms)
        out.append({"frames": frames, "times": times, "tracks": parsed.segments[c.segment].tracks,
                    "cluster_ms": c.timecode_ms})
    return out


def assert_same_fragment(doc: dict, want: dict, label: str, cluster_ms: float | None = None):
    """Frames byte-exact, each at its time in the Cluster, and the Cluster at the timecode the producer sent
    (`cluster_ms`: the fixture's own when put-media sent the file's RELATIVE timecodes as they are)."""
    assert doc["clusters"] == 1, f"{label}: {doc['clusters']} clusters in one document"
    assert sorted(doc["frames"]) == sorted(want["frames"]), f"{label}: tracks {sorted(doc['frames'])}"
    expected_cluster = want["cluster_ms"] if cluster_ms is None else cluster_ms
    assert doc["cluster_ms"] == expected_cluster, f"{label}: Cluster timecode {doc['cluster_ms']} ms"
    for track, frames in want["frames"].items():
        got = doc["frames"][track]
        assert len(got) == len(frames), f"{label} track {track}: {len(got)} frames, fixture {len(frames)}"
        for j, (g, w) in enumerate(zip(got, frames)):
            assert g == w, f"{label} track {track} frame {j}: bytes differ ({len(g)} vs {len(w)})"
        # Each frame at its ingested time in the Cluster.
        rel = [round(t, 3) for t in doc["times"][track]]
        assert rel == [round(t, 3) for t in want["times"][track]], f"{label} track {track}: times {rel[:5]}..."


def get_media(server, stream: str, selector: dict) -> bytes:
    r = server.client("kinesis-video-media").get_media(StreamName=stream, StartSelector=selector)
    assert r["ContentType"] == "video/webm"
    return r["Payload"].read()


def numbers_of(docs: list[dict]) -> list[str]:
    return [d["before"]["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] for d in docs]


@pytest.fixture(scope="module")
def stored(server):
    """The fixture ingested once (put-media --fast); its fragments from ListFragments, in ingest order."""
    stream, _ = server.create_stream()
    rc, summary, err = server.put_media(stream, FIXTURES / FIXTURE, "--fast")
    assert rc == 0, f"put-media: rc={rc} {summary} {err[-2000:]}"
    frags = kvs.wait_fragments(server.am(), stream, 4)
    assert len(frags) == 4, frags
    frags.sort(key=lambda f: f["FragmentNumber"])
    return stream, frags


# -- GetMedia ----------------------------------------------------------------------------------------


def test_boto3_get_media_earliest_returns_every_fragment_byte_exact(server, stored):
    stream, frags = stored
    t0 = time.monotonic()
    payload = get_media(server, stream, {"StartSelectorType": "EARLIEST"})
    took = time.monotonic() - t0
    docs = documents(payload)
    want = fixture_fragments()
    assert numbers_of(docs) == [f["FragmentNumber"] for f in frags]
    for i, (doc, f) in enumerate(zip(docs, frags)):
        assert_same_fragment(doc, want[i], f"fragment {i}")
        before, after = doc["before"], doc["after"]
        assert SECONDS.match(before["AWS_KINESISVIDEO_SERVER_TIMESTAMP"]), before
        assert SECONDS.match(before["AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"]), before
        assert abs(float(before["AWS_KINESISVIDEO_SERVER_TIMESTAMP"]) - f["ServerTimestamp"].timestamp()) < 0.0015
        assert abs(float(before["AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"]) - f["ProducerTimestamp"].timestamp()) < 0.0015
        assert after["AWS_KINESISVIDEO_CONTINUATION_TOKEN"] == f["FragmentNumber"]
        assert int(after["AWS_KINESISVIDEO_MILLIS_BEHIND_NOW"]) >= 0
        # Its own Tracks with the codec private data the producer sent.
        assert doc["tracks"][1].codec_id == "V_MPEG4/ISO/AVC" and doc["tracks"][1].codec_private
        assert doc["tracks"][2].codec_id == "A_AAC" and doc["tracks"][2].codec_private
    # A finished stream: the response ends by itself once caught up (docs/choices.md#getmedia-end).
    print(f"GetMedia EARLIEST of a finished 4-fragment stream: {len(payload)} bytes in {took:.2f} s")


@pytest.mark.parametrize("name", ["h264_aac_bframes.mkv", "h265.mkv", "aac_only.mkv", "h264_res_change.mkv"])
def test_every_fixture_comes_back_with_its_own_tracks(server, name):
    """B-frames (times going back and forth), H.265, audio only, and a producer changing codec private data
    mid-stream: each fragment's document carries the Tracks it was ingested with."""
    stream, _ = server.create_stream()
    rc, summary, err = server.put_media(stream, FIXTURES / name, "--fast")
    assert rc == 0, f"put-media: rc={rc} {summary} {err[-2000:]}"
    want = fixture_fragments(name)
    kvs.wait_fragments(server.am(), stream, len(want))
    docs = documents(get_media(server, stream, {"StartSelectorType": "EARLIEST"}))
    assert len(docs) == len(want)
    for i, (doc, w) in enumerate(zip(docs, want)):
        assert_same_fragment(doc, w, f"{name} fragment {i}")
        for number, track in w["tracks"].items():
            got = doc["tracks"][number]
            assert (got.codec_id, got.codec_private) == (track.codec_id, track.codec_private), \
                f"{name} fragment {i} track {number}"
            assert (got.width, got.height) == (track.width, track.height)


def test_start_selectors(server, stored):
    stream, frags = stored
    nums = [f["FragmentNumber"] for f in frags]
    after_second = get_media(server, stream, {"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": nums[1]})
    assert numbers_of(documents(after_second)) == nums[2:]
    resumed = get_media(server, stream, {"StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": nums[0]})
    assert numbers_of(documents(resumed)) == nums[1:]
    # A time inside the third fragment: the fragment being recorded then, and the rest after it. boto3 sends
    # whole seconds (botocore truncates unix timestamps), so the time is the first whole second in it. The
    # producer clock spaces fragments a second apart; put-media --fast sent them within milliseconds of each
    # other on the server clock, where the latest fragment to start before that time is the one
    # (docs/wire.md#getmedia).
    for kind, key in (("SERVER_TIMESTAMP", "ServerTimestamp"), ("PRODUCER_TIMESTAMP", "ProducerTimestamp")):
        inside = math.ceil(frags[2][key].timestamp())
        got = get_media(server, stream, {"StartSelectorType": kind, "StartTimestamp": inside})
        by_time = sorted(frags, key=lambda f: (f[key], f["FragmentNumber"]))
        recording = [f for f in by_time if f[key].timestamp() <= inside][-1]
        if kind == "PRODUCER_TIMESTAMP":
            assert recording is frags[2]
        assert numbers_of(documents(got)) == nums[nums.index(recording["FragmentNumber"]):], kind
        before_all = get_media(server, stream, {"StartSelectorType": kind,
                                                "StartTimestamp": frags[0][key].timestamp() - 3600})
        assert numbers_of(documents(before_all)) == nums, kind
    # Nothing after the last one, and nobody writing: an empty payload, not a hang.
    assert get_media(server, stream, {"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": nums[-1]}) == b""


def test_ffmpeg_reads_every_frame_of_the_payload(server, stored, tmp_path):
    """ffmpeg reads the concatenated documents as AWS's own GetMedia output (it warns at each new Segment)."""
    need("ffmpeg")
    stream, _ = stored
    out = tmp_path / "get_media.mkv"
    out.write_bytes(get_media(server, stream, {"StartSelectorType": "EARLIEST"}))
    src = str(FIXTURES / FIXTURE)
    for sel in ("v", "a"):
        compare_frames(f"GetMedia {sel}", framemd5(str(out), sel), framemd5(src, sel))


def test_mkvinfo_shows_the_kvs_tags(server, stored, tmp_path):
    need("mkvinfo")
    stream, frags = stored
    out = tmp_path / "get_media.mkv"
    out.write_bytes(get_media(server, stream, {"StartSelectorType": "EARLIEST"}))
    p = subprocess.run(["mkvinfo", "-v", str(out)], capture_output=True, text=True, timeout=60)
    text = p.stdout
    for name in ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", "AWS_KINESISVIDEO_SERVER_TIMESTAMP",
                 "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW",
                 "AWS_KINESISVIDEO_CONTINUATION_TOKEN"):
        assert f"Name: {name}" in text, f"mkvinfo does not show {name}:\n{text[:3000]}"
    assert f"String: {frags[0]['FragmentNumber']}" in text
    assert "Codec ID: V_MPEG4/ISO/AVC" in text and "Codec ID: A_AAC" in text


def test_aws_cli_get_media_writes_the_payload_to_the_file(server, stored, tmp_path):
    stream, frags = stored
    out = tmp_path / "cli.mkv"
    rc, doc, err = server.aws("kinesis-video-media", "get-media", "--stream-name", stream,
                              "--start-selector", "StartSelectorType=EARLIEST", str(out))
    assert rc == 0, err
    assert doc == {"ContentType": "video/webm"}
    docs = documents(out.read_bytes())
    assert numbers_of(docs) == [f["FragmentNumber"] for f in frags]
    for i, (d, w) in enumerate(zip(docs, fixture_fragments())):
        assert_same_fragment(d, w, f"AWS CLI fragment {i}")


def js_sdk(server, stream: str, out: Path, *args: str) -> dict:
    """tests/e2e/players/get_media.mjs: the AWS SDK for JavaScript v3 streaming the payload to `out`."""
    p = subprocess.run(["node", str(PLAYERS / "get_media.mjs"), server.endpoint, stream, str(out), *args],
                       capture_output=True, text=True, timeout=120, env=client_env(), cwd=PLAYERS)
    result = json.loads(p.stdout.strip().splitlines()[-1]) if p.stdout.strip() else {}
    assert p.returncode in (0, 1), p.stdout + p.stderr
    return result


def test_js_sdk_v3_reads_get_media_and_get_media_for_fragment_list(server, stored, tmp_path):
    need("node")
    stream, frags = stored
    nums = [f["FragmentNumber"] for f in frags]
    want = fixture_fragments()
    out = tmp_path / "js_get_media.mkv"
    r = js_sdk(server, stream, out, "get-media", json.dumps({"StartSelectorType": "EARLIEST"}))
    assert r == {"contentType": "video/webm", "bytes": out.stat().st_size}, r
    docs = documents(out.read_bytes())
    assert numbers_of(docs) == nums
    for i, d in enumerate(docs):
        assert_same_fragment(d, want[i], f"JS GetMedia fragment {i}")
    listed = tmp_path / "js_list.mkv"
    r = js_sdk(server, stream, listed, "get-media-for-fragment-list", nums[2], nums[1])
    assert r["contentType"] == "video/webm", r
    docs = documents(listed.read_bytes())
    assert numbers_of(docs) == [nums[2], nums[1]]
    assert_same_fragment(docs[0], want[2], "JS list fragment 2")
    # An SDK error is the modeled exception.
    r = js_sdk(server, "no-such-stream-gm", tmp_path / "none.mkv", "get-media", json.dumps({"StartSelectorType": "NOW"}))
    assert (r.get("error"), r.get("status")) == ("ResourceNotFoundException", 404), r


def test_get_media_errors(server, stored):
    stream, frags = stored
    media = server.client("kinesis-video-media")
    cases = [
        (dict(StreamName="no-such-stream-gm", StartSelector={"StartSelectorType": "EARLIEST"}),
         "ResourceNotFoundException", 404),
        (dict(StreamName=stream, StartSelector={"StartSelectorType": "FRAGMENT_NUMBER"}),
         "InvalidArgumentException", 400),
        (dict(StreamName=stream, StartSelector={"StartSelectorType": "SERVER_TIMESTAMP"}),
         "InvalidArgumentException", 400),
        (dict(StreamName=stream, StartSelector={"StartSelectorType": "CONTINUATION_TOKEN"}),
         "InvalidArgumentException", 400),
        (dict(StreamName=stream, StartSelector={"StartSelectorType": "SOMETIME"}),
         "InvalidArgumentException", 400),
        (dict(StreamName=stream, StartSelector={"StartSelectorType": "FRAGMENT_NUMBER",
                                                "AfterFragmentNumber": "12ab"}),
         "InvalidArgumentException", 400),
    ]
    for kwargs, code, status in cases:
        with pytest.raises(ClientError) as e:
            media.get_media(**kwargs)
        assert e.value.response["Error"]["Code"] == code, kwargs
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == status, kwargs
        assert e.value.response["Error"]["Message"], kwargs
    # Nothing stored was touched.
    assert numbers_of(documents(get_media(server, stream, {"StartSelectorType": "EARLIEST"}))) == \
        [f["FragmentNumber"] for f in frags]


def test_a_fourth_concurrent_get_media_of_a_stream_is_refused(server):
    stream, _ = server.create_stream()
    media = server.client("kinesis-video-media")
    # NOW on a stream nobody writes to: each response stays open, waiting for a producer.
    open_ = [media.get_media(StreamName=stream, StartSelector={"StartSelectorType": "NOW"}) for _ in range(3)]
    with pytest.raises(ClientError) as e:
        media.get_media(StreamName=stream, StartSelector={"StartSelectorType": "NOW"})
    assert e.value.response["Error"]["Code"] == "ConnectionLimitExceededException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # Another stream is not affected.
    other, _ = server.create_stream()
    media.get_media(StreamName=other, StartSelector={"StartSelectorType": "NOW"})["Payload"].close()
    # A reader that goes away frees its place.
    open_[0]["Payload"].close()
    deadline = time.monotonic() + 10
    while True:
        try:
            media.get_media(StreamName=stream, StartSelector={"StartSelectorType": "NOW"})["Payload"].close()
            break
        except ClientError as err:
            assert err.response["Error"]["Code"] == "ConnectionLimitExceededException"
            assert time.monotonic() < deadline, "a closed GetMedia still counts after 10 s"
            time.sleep(0.2)
    for r in open_[1:]:
        r["Payload"].close()


def test_live_get_media_now_tails_a_real_time_producer(server):
    """GetMedia NOW against a producer sending in real time: each fragment arrives in order, byte-exact, a few
    milliseconds after its PERSISTED ack (latency printed, not asserted: the machines are shared)."""
    stream, _ = server.create_stream()
    src = mkv.Source(FIXTURES / FIXTURE)
    media = server.client("kinesis-video-media")
    response = media.get_media(StreamName=stream, StartSelector={"StartSelectorType": "NOW"})
    received = bytearray()
    arrivals: list[tuple[int, float]] = []  # (bytes so far, monotonic time)

    def read():
        while True:
            # read1: what has arrived, without waiting for a full buffer (urllib3 2).
            chunk = response["Payload"]._raw_stream.read1(65536)
            if not chunk:
                return
            received.extend(chunk)
            arrivals.append((len(received), time.monotonic()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    rounds = 3  # 12 fragments of ~1 s
    put = kvs.PutMedia(server.endpoint, stream)
    assert put.wait_status() == 200, put.describe()
    sent = 0
    t0 = time.monotonic()
    assert put.send(src.header)
    for r in range(rounds):
        for i, c in enumerate(src.clusters):
            timecode = (r * 4000) + c.timecode
            due = t0 + timecode / 1000
            time.sleep(max(0.0, due - time.monotonic()))
            assert put.send(src.emit_cluster(i, timecode)), put.describe()
            sent += 1
    assert put.finish()
    assert put.wait_for(lambda acks: sum(a.get("EventType") == "PERSISTED" for a in acks) >= sent, 30), put.describe()
    persisted_at = {}
    for ack, at in zip(put.acks, put.ack_times):
        if ack.get("EventType") == "PERSISTED":
            persisted_at[ack["FragmentNumber"]] = at
    put.close()
    reader.join(30)
    assert not reader.is_alive(), "the live GetMedia did not end after the producer stopped"
    payload = bytes(received)
    docs = documents(payload)
    assert numbers_of(docs) == sorted(persisted_at), "every PERSISTED fragment, in order, nothing else"
    want = fixture_fragments()
    latencies = []
    ends = [d["offset"] for d in docs[1:]] + [len(payload)]
    for i, (doc, end) in enumerate(zip(docs, ends)):
        # Sent RELATIVE with the fixture's timecodes shifted 4 s a round: those come back.
        assert_same_fragment(doc, want[i % 4], f"live fragment {i}", (i // 4) * 4000 + want[i % 4]["cluster_ms"])
        arrived = next(t for n, t in arrivals if n >= end)
        latencies.append((arrived - persisted_at[numbers_of([doc])[0]]) * 1000)
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"live GetMedia NOW: {len(docs)} fragments, PERSISTED ack -> whole chunk received: "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms")


# -- GetMediaForFragmentList -------------------------------------------------------------------------


def test_get_media_for_fragment_list_in_the_order_asked(server, stored):
    stream, frags = stored
    nums = [f["FragmentNumber"] for f in frags]
    asked = [nums[3], nums[0], nums[2], nums[0]]
    r = server.am().get_media_for_fragment_list(StreamName=stream, Fragments=asked)
    assert r["ContentType"] == "video/webm"
    docs = documents(r["Payload"].read())
    assert numbers_of(docs) == asked
    want = fixture_fragments()
    for doc, n in zip(docs, asked):
        assert_same_fragment(doc, want[nums.index(n)], f"fragment {nums.index(n)}")
        assert doc["before"]["AWS_KINESISVIDEO_SERVER_SIDE_TIMESTAMP"] == doc["before"]["AWS_KINESISVIDEO_SERVER_TIMESTAMP"]
        assert "AWS_KINESISVIDEO_CONTINUATION_TOKEN" not in doc["after"]


def test_get_media_for_fragment_list_errors(server, stored):
    stream, frags = stored
    am = server.am()
    unknown = "9" * 40
    cases = [
        (dict(StreamName=stream, Fragments=[frags[0]["FragmentNumber"], unknown]), "InvalidArgumentException", 400,
         "Fragment numbers are invalid"),
        (dict(StreamName=stream, Fragments=["12x"]), "InvalidArgumentException", 400, "fragments.1.member"),
        (dict(StreamName=stream, Fragments=[frags[0]["FragmentNumber"]] * 1001), "InvalidArgumentException", 400,
         "length less than or equal to 1000"),
        (dict(StreamName="no-such-stream-gm", Fragments=[frags[0]["FragmentNumber"]]), "ResourceNotFoundException",
         404, ""),
    ]
    for kwargs, code, status, text in cases:
        with pytest.raises(ClientError) as e:
            am.get_media_for_fragment_list(**kwargs)
        err = e.value.response
        assert err["Error"]["Code"] == code, (kwargs.get("Fragments", [])[:2], err)
        assert err["ResponseMetadata"]["HTTPStatusCode"] == status
        assert text in err["Error"]["Message"], err["Error"]["Message"]
