"""PutMedia ingest (docs/wire.md#putmedia-request) and ListFragments (docs/wire.md#listfragments), with `openkvs put-media` and a raw client.

The oracle for "how many fragments" is tests/e2e/mkv.py's cluster count of the fixture.
"""

from __future__ import annotations

import os
import threading
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

import mkv
from conftest import FIXTURES, parse_summary, read_acks, unique_name
from kvs import PutMedia, all_fragments, json_body, list_fragments, raw_post, wait_fragments

FIXTURE_NAMES = ["h264_aac.mkv", "h264_aac_bframes.mkv", "h265.mkv", "aac_only.mkv", "h264_res_change.mkv"]


def ts(dt) -> float:
    return dt.timestamp()


def check_fragments(frags, m: mkv.Mkv, *, producer_start: float | None = None, exact_start: bool = False):
    """The listed fragments match the fixture's clusters (count, order, timestamps, durations)."""
    n = len(m.clusters)
    assert len(frags) == n, [f["FragmentNumber"] for f in frags]
    by_time = sorted(frags, key=lambda f: ts(f["ProducerTimestamp"]))
    numbers = [f["FragmentNumber"] for f in by_time]
    assert all(x.isdigit() for x in numbers), numbers
    assert len({len(x) for x in numbers}) == 1, f"fragment numbers differ in length: {numbers}"
    assert [int(x) for x in numbers] == sorted(int(x) for x in numbers), "numbers not increasing in ingest order"
    assert len(set(numbers)) == n
    server_ts = [ts(f["ServerTimestamp"]) for f in by_time]
    assert server_ts == sorted(server_ts), "server timestamps go back"

    p = [ts(f["ProducerTimestamp"]) for f in by_time]
    tc = [c.timecode_ms for c in m.clusters]
    for i in range(1, n):
        assert abs((p[i] - p[0]) * 1000 - (tc[i] - tc[0])) <= 1.0, (i, p, tc)
    if producer_start is not None:
        if exact_start:
            assert abs(p[0] - (producer_start + tc[0] / 1000)) <= 0.0011, (p[0], producer_start, tc[0])
        else:
            assert producer_start - 2 <= p[0] - tc[0] / 1000 <= producer_start + 2, (p[0], producer_start)

    # Track 1's span (docs/choices.md#fragment-length), to the millisecond.
    for i, f in enumerate(by_time):
        length = f["FragmentLengthInMilliseconds"]
        assert abs(length - m.track_one_span_ms(i)) <= 0.5, (i, length, m.track_one_span_ms(i))
        assert f["FragmentSizeInBytes"] > 0
    # Fragments that start at their track-1 key frame (no audio frame opening the cluster) tile:
    # length(n) = start(n+1) - start(n).
    for i in range(n - 1):
        seg = m.segments[m.clusters[i].segment]
        track = min(seg.tracks)
        first = [b for b in m.clusters[i + 1].blocks if b.track == track]
        if m.clusters[i + 1].blocks[0].track == track and first and first[0].rel_timecode == 0 \
                and m.clusters[i].segment == m.clusters[i + 1].segment:
            start_gap = round((ts(by_time[i + 1]["ProducerTimestamp"]) - ts(by_time[i]["ProducerTimestamp"])) * 1000)
            assert by_time[i]["FragmentLengthInMilliseconds"] == start_gap, (i, by_time[i], by_time[i + 1])
    return by_time


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
def test_put_media_fixture(server, oracle, fixture):
    m = oracle(fixture)
    n = len(m.clusters)
    name, arn = server.create_stream(retention=24)
    t0 = time.time()
    rc, summary, err = server.put_media(name, FIXTURES / fixture, "--fast", "--timecode-type", "RELATIVE")
    t1 = time.time()
    assert rc == 0, (rc, summary, err)
    assert summary is not None, err
    assert summary["Errors"] == [], summary
    assert summary["Persisted"] == n, summary
    assert summary["Received"] == n, summary
    assert summary["BytesSent"] == os.path.getsize(FIXTURES / fixture), summary
    assert summary["PersistLatencyMs"]["count"] == n, summary

    am = server.am()
    frags = wait_fragments(am, name, n)
    by_time = check_fragments(frags, m, producer_start=t0)
    for f in by_time:
        assert t0 - 1 <= ts(f["ServerTimestamp"]) <= t1 + 1, (f, t0, t1)

    # the same fragments by server time, by producer time, by ARN
    assert {f["FragmentNumber"] for f in list_fragments(am, name, "SERVER_TIMESTAMP", t0 - 60, t1 + 60)} == \
        {f["FragmentNumber"] for f in frags}
    assert {f["FragmentNumber"] for f in list_fragments(am, name, "PRODUCER_TIMESTAMP", t0 - 60, t1 + 60)} == \
        {f["FragmentNumber"] for f in frags}
    r = am.list_fragments(StreamARN=arn, FragmentSelector={
        "FragmentSelectorType": "SERVER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": t0 - 60, "EndTimestamp": t1 + 60}})
    assert len(r["Fragments"]) == n
    # a window before the ingest is empty
    assert list_fragments(am, name, "SERVER_TIMESTAMP", t0 - 3600, t0 - 600) == []


def test_list_fragments_pagination(server, oracle):
    m = oracle("h264_aac.mkv")
    name, _ = server.create_stream()
    for _ in range(2):  # two PutMedias: 8 fragments
        rc, summary, err = server.put_media(name, FIXTURES / "h264_aac.mkv", "--fast")
        assert rc == 0, err
    am = server.am()
    every = wait_fragments(am, name, 2 * len(m.clusters))
    assert len(every) == 8
    now = time.time()

    # NextToken alone on the following requests
    got = list_fragments(am, name, "SERVER_TIMESTAMP", now - 600, now + 60, MaxResults=2)
    assert sorted(f["FragmentNumber"] for f in got) == [f["FragmentNumber"] for f in every]

    # the botocore paginator (sends the selector again with NextToken)
    pages = list(am.get_paginator("list_fragments").paginate(
        StreamName=name, FragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP",
                                           "TimestampRange": {"StartTimestamp": now - 600, "EndTimestamp": now + 60}},
        PaginationConfig={"PageSize": 2}))
    assert len(pages) >= 4
    assert all(len(p["Fragments"]) <= 2 for p in pages)
    numbers = [f["FragmentNumber"] for p in pages for f in p["Fragments"]]
    assert sorted(numbers) == [f["FragmentNumber"] for f in every]


def test_put_media_raw_relative(server, oracle):
    """A raw PutMedia (C-producer style signing): acks per fragment, producer time = start + timecode."""
    src = mkv.Source(FIXTURES / "h264_aac.mkv")
    m = oracle("h264_aac.mkv")
    name, _ = server.create_stream()
    start = 1_700_000_000.5
    pm = PutMedia(server.endpoint, name, timecode_type="RELATIVE", producer_start=start)
    assert pm.wait_status() == 200, pm.describe()
    pm.send(src.header)
    for i in range(len(src.clusters)):
        pm.send(src.emit_cluster(i))
    pm.finish()
    assert pm.wait_closed(60), "the response did not end after the body ended"
    pm.close()
    assert pm.errors == [], pm.describe()
    n = len(m.clusters)
    persisted = pm.persisted
    assert len(persisted) == n, pm.describe()
    assert [a["FragmentTimecode"] for a in persisted] == [c.timecode for c in m.clusters]
    for kind in ("BUFFERING", "RECEIVED"):
        assert len(pm.events(kind)) == n, pm.describe()
    for a in pm.acks:
        if a["EventType"] in ("BUFFERING", "RECEIVED", "PERSISTED"):
            assert isinstance(a["FragmentNumber"], str) and a["FragmentNumber"].isdigit(), a
            assert isinstance(a["FragmentTimecode"], int), a
    # the same fragment number through BUFFERING -> RECEIVED -> PERSISTED
    for kind in ("BUFFERING", "RECEIVED"):
        assert [a["FragmentNumber"] for a in pm.events(kind)] == [a["FragmentNumber"] for a in persisted]

    frags = wait_fragments(server.am(), name, n)
    by_time = check_fragments(frags, m, producer_start=start, exact_start=True)
    assert [f["FragmentNumber"] for f in by_time] == [a["FragmentNumber"] for a in persisted]

    # PRODUCER_TIMESTAMP ranges are inclusive on fragment start times; fractional seconds on the wire
    p = [round(ts(f["ProducerTimestamp"]), 3) for f in by_time]
    st, _, body = raw_post(server.endpoint, "/listFragments", {
        "StreamName": name, "FragmentSelector": {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                                                 "TimestampRange": {"StartTimestamp": p[1], "EndTimestamp": p[2]}}})
    assert st == 200, body
    doc = json_body(body)
    assert sorted(f["FragmentNumber"] for f in doc["Fragments"]) == sorted([by_time[1]["FragmentNumber"],
                                                                           by_time[2]["FragmentNumber"]])
    for f in doc["Fragments"]:
        assert isinstance(f["ProducerTimestamp"], (int, float)) and isinstance(f["ServerTimestamp"], (int, float))
        assert isinstance(f["FragmentSizeInBytes"], int) and isinstance(f["FragmentLengthInMilliseconds"], int)


def test_put_media_absolute_timecodes(server, oracle):
    """ABSOLUTE: cluster timecodes are epoch ms; the producer timestamp is the timecode itself."""
    src = mkv.Source(FIXTURES / "h264_aac.mkv")
    base = int(time.time() * 1000) - 60_000
    body = src.header + b"".join(src.emit_cluster(i, base + c.timecode) for i, c in enumerate(src.clusters))
    name, _ = server.create_stream()
    rc, summary, err = server.put_media(name, "-", "--fast", "--timecode-type", "ABSOLUTE", stdin=body)
    assert rc == 0, (rc, summary, err)
    assert summary["Persisted"] == len(src.clusters), summary
    frags = wait_fragments(server.am(), name, len(src.clusters))
    by_time = sorted(frags, key=lambda f: ts(f["ProducerTimestamp"]))
    assert [round(ts(f["ProducerTimestamp"]) * 1000) for f in by_time] == [base + c.timecode for c in src.clusters]
    got = list_fragments(server.am(), name, "PRODUCER_TIMESTAMP", base / 1000 - 1, base / 1000 + 10)
    assert len(got) == len(src.clusters)


def test_put_media_with_credentials(auth_server, oracle):
    name, _ = auth_server.create_stream()
    rc, summary, err = auth_server.put_media(name, FIXTURES / "h265.mkv", "--fast")
    assert rc == 0, (rc, summary, err)
    assert summary["Persisted"] == len(oracle("h265.mkv").clusters)


def test_put_media_unknown_stream_cli(server):
    rc, summary, err = server.put_media(unique_name("nope"), FIXTURES / "h264_aac.mkv", "--fast")
    assert rc == 254, (rc, summary, err)


def test_fragments_survive_restart(fresh_server, oracle):
    s = fresh_server
    listings = {}
    for fixture in ("h264_aac.mkv", "h265.mkv"):
        name, _ = s.create_stream()
        rc, summary, err = s.put_media(name, FIXTURES / fixture, "--fast")
        assert rc == 0, err
        listings[name] = wait_fragments(s.am(), name, len(oracle(fixture).clusters))
        assert len(listings[name]) == len(oracle(fixture).clusters)

    def snapshot(name):
        return [(f["FragmentNumber"], ts(f["ProducerTimestamp"]), ts(f["ServerTimestamp"]),
                 f["FragmentLengthInMilliseconds"], f["FragmentSizeInBytes"]) for f in all_fragments(s.am(), name)]

    before = {name: snapshot(name) for name in listings}
    s.restart()
    assert {name: snapshot(name) for name in listings} == before
    for name in listings:
        assert s.kv().describe_stream(StreamName=name)["StreamInfo"]["Status"] == "ACTIVE"
    # acknowledged data survives kill -9 too
    s.kill9()
    s.start()
    assert {name: snapshot(name) for name in listings} == before

    # ingest continues after a restart with larger fragment numbers
    name = next(iter(listings))
    rc, summary, err = s.put_media(name, FIXTURES / "h264_aac.mkv", "--fast")
    assert rc == 0, err
    after = all_fragments(s.am(), name)
    assert len(after) == 8
    old_max = max(int(f[0]) for f in before[name])
    assert sum(1 for f in after if int(f["FragmentNumber"]) > old_max) == 4


@pytest.mark.parametrize("mode", ["paced", "flat-out"])
def test_crash_safety_kill9(fresh_server, oracle, tmp_path, mode):
    """Every fragment acknowledged PERSISTED before a kill -9 is listed after the restart, same number.

    paced: one cluster every 0.25 s, kill after >= 5 fragments are persisted.
    flat-out: a writer thread feeds put-media as fast as it takes the data while the test kills the
    server as soon as 3 fragments are visible, so the kill lands with fragments in flight."""
    s = fresh_server
    src = mkv.Source(FIXTURES / "h264_aac.mkv")
    clusters = src.looped(25 if mode == "paced" else 150)  # 100 / 600 one-second fragments
    name, _ = s.create_stream()
    acks_file = tmp_path / "acks.jsonl"
    proc = s.put_media_popen(name, "-", "--fast", "--timecode-type", "RELATIVE", "--acks", acks_file,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    written = [0]  # clusters fully written to put-media

    def persisted_count() -> int:
        # the acks file, or the listing (put-media may write the file in blocks)
        acked = sum(1 for a in read_acks(acks_file) if a.get("EventType") == "PERSISTED")
        return max(acked, len(all_fragments(s.am(), name)))

    def writer(pace: float):
        try:
            proc.stdin.write(src.header)
            for c in clusters:
                proc.stdin.write(c)
                proc.stdin.flush()
                written[0] += 1
                if pace:
                    time.sleep(pace)
                if not s.alive():
                    break
        except (BrokenPipeError, OSError, ValueError):
            pass

    killed = False
    deadline = time.monotonic() + 60
    try:
        t = threading.Thread(target=writer, args=(0.25 if mode == "paced" else 0.0,), daemon=True)
        t.start()
        need = 5 if mode == "paced" else 3
        while time.monotonic() < deadline and proc.poll() is None:
            if persisted_count() >= need:
                s.kill9()
                killed = True
                break
            time.sleep(0.02)
        in_flight = written[0]
    finally:
        t.join(30)
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert killed, f"put-media ended (rc {proc.returncode}) before the kill: {read_acks(acks_file)[-5:]}"
    assert in_flight < len(clusters), "the whole input was already written when the server was killed"
    assert proc.returncode != 0  # the connection broke

    acked = [a["FragmentNumber"] for a in read_acks(acks_file) if a.get("EventType") == "PERSISTED"]
    assert len(acked) >= 1, f"no PERSISTED ack in {acks_file}"
    s.start()
    listed = {f["FragmentNumber"]: f for f in all_fragments(s.am(), name)}
    missing = [n for n in acked if n not in listed]
    assert not missing, f"acknowledged PERSISTED but lost after kill -9: {missing}"
    # nothing listed that was never sent, and fragment numbers still ordered by producer time
    assert len(listed) <= written[0]
    by_time = sorted(listed.values(), key=lambda f: ts(f["ProducerTimestamp"]))
    assert [int(f["FragmentNumber"]) for f in by_time] == sorted(int(f["FragmentNumber"]) for f in by_time)
    tcs = [c.timecode for c in mkv.parse(src.header + b"".join(clusters)).clusters]
    p0 = ts(by_time[0]["ProducerTimestamp"])
    for f in by_time:  # every listed fragment is one of the sent clusters, at its producer time
        assert any(abs((ts(f["ProducerTimestamp"]) - p0) * 1000 - tc) <= 1 for tc in tcs), f
    # and the stream takes new media
    rc, summary, err = s.put_media(name, FIXTURES / "h264_aac.mkv", "--fast")
    assert rc == 0, err
    assert summary["Persisted"] == 4


def test_list_fragments_errors(server):
    am = server.am()
    name, _ = server.create_stream()
    with pytest.raises(ClientError) as ei:
        am.list_fragments(StreamName=name)
    assert ei.value.response["Error"]["Code"] == "InvalidArgumentException"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as ei:
        am.list_fragments(StreamName=unique_name("nope"), FragmentSelector={
            "FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": {"StartTimestamp": 1, "EndTimestamp": 2}})
    assert ei.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as ei:
        am.list_fragments(StreamName=name, FragmentSelector={
            "FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": {"StartTimestamp": 1, "EndTimestamp": 2}},
            MaxResults=1001)
    assert ei.value.response["Error"]["Code"] == "InvalidArgumentException"
    with pytest.raises(ClientError) as ei:
        am.list_fragments(StreamName=name, NextToken="bm90IGEgdG9rZW4=")
    assert ei.value.response["Error"]["Code"] == "InvalidArgumentException"


def test_concurrent_streams(server, oracle):
    """PutMedia on different streams at the same time: one connection per stream, not per server."""
    names = [server.create_stream()[0] for _ in range(3)]
    procs = [server.put_media_popen(n, FIXTURES / "h264_aac.mkv", "--fast", stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE) for n in names]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode(errors="replace")
        assert parse_summary(out.decode())["Persisted"] == 4
    for n in names:  # fragment numbers are per stream (the contract does not make them unique across streams)
        frags = wait_fragments(server.am(), n, 4)
        assert len(frags) == 4
        assert len({f["FragmentNumber"] for f in frags}) == 4


def test_public_url(server_factory):
    """--public-url is what GetDataEndpoint returns (no trailing slash), whatever the listen address."""
    s = server_factory(extra_args=["--public-url", "http://cams.example.net:8443/"])
    name, _ = s.create_stream()
    for api in ("PUT_MEDIA", "GET_HLS_STREAMING_SESSION_URL"):
        assert s.kv().get_data_endpoint(StreamName=name, APIName=api)["DataEndpoint"] == "http://cams.example.net:8443"
