"""AWS's real C producer SDK (producer-c v1.6.0 on PIC v1.2.0) against openkvs, end to end.

scripts/build-kvs-producer-c.sh builds the SDK from the pinned tarballs (cached) and our driver
(tests/e2e/producer_c/driver.c); scripts/test.sh passes its path in $OPENKVS_KVS_PRODUCER_DRIVER, and
without it this module runs the build script itself. A driver that cannot be built fails the tests.

The driver feeds every frame of tests/fixtures/h264_aac.mkv (dumped here with tests/e2e/mkv.py to a
simple frame list: track, key flag, timestamp, bytes, plus each track's CodecPrivate as the SDK's CPD)
to putKinesisVideoFrame with the SDK's default stream info and callbacks provider, as fast as it takes
them or paced in real time, then calls stopKinesisVideoStreamSync. Checked: the stop status is
STATUS_SUCCESS, the SDK's FragmentAckReceived callback saw every fragment PERSISTED with a live upload
handle, the SDK logged no ACK for an expired upload handle and reported no stream error or dropped
frame/fragment, ListFragments lists exactly the acked fragments at the acked timecodes, and an HLS
ON_DEMAND session gives back every video and audio frame of the fixture, byte for byte (ffmpeg
framemd5, the helpers of test_players.py).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import time
from pathlib import Path

import pytest

import kvs
import mkv
from conftest import ACCESS_KEY, FIXTURES, REGION, ROOT, SECRET_KEY, client_env, unique_name
from test_players import compare_frames, framemd5, need, on_demand_url

FIXTURE = FIXTURES / "h264_aac.mkv"
INVALID_UPLOAD_HANDLE = 2**64 - 1
STATUS_SUCCESS = "0x00000000"
DRIVER_TIMEOUT = 45  # a 4-s fixture takes ~5 s in real time; a stop that hangs waits 120 s in the SDK


@pytest.fixture(scope="module")
def driver() -> tuple[str | None, str | None]:
    """(driver path, None) or (None, why not): the tests themselves fail on the latter (not a setup error)."""
    path = os.environ.get("OPENKVS_KVS_PRODUCER_DRIVER")
    if not path:
        t0 = time.monotonic()
        p = subprocess.run([str(ROOT / "scripts" / "build-kvs-producer-c.sh")], capture_output=True, text=True,
                           timeout=1800)
        if p.returncode != 0:
            return None, f"scripts/build-kvs-producer-c.sh failed (rc={p.returncode}):\n{p.stderr[-4000:]}"
        path = p.stdout.strip().splitlines()[-1]
        print(f"producer-c driver {path} ready in {time.monotonic() - t0:.1f} s")
    if not os.access(path, os.X_OK):
        return None, f"producer-c driver not found or not executable: {path}"
    return path, None


def write_frame_list(src: Path, out: Path) -> dict:
    """The fixture's frames in file order as the driver reads them (see driver.c); returns counts."""
    buf = src.read_bytes()
    m = mkv.parse(buf)
    assert len(m.segments) == 1, "one Segment (one set of CodecPrivate) expected"
    tracks = sorted(m.segments[0].tracks.values(), key=lambda t: t.number)
    rec = bytearray(b"OKVSFRM1" + struct.pack("<I", len(tracks)))
    for t in tracks:
        cid = t.codec_id.encode()
        rec += struct.pack("<III", t.number, t.type, len(cid)) + cid
        rec += struct.pack("<I", len(t.codec_private)) + t.codec_private
    first_ms = min(c.block_ms(b) for c in m.clusters for b in c.blocks)
    counts = {"frames": 0, "keyframes": 0}
    for c in m.clusters:
        for b, frame in mkv.frames_of(buf, c):
            t = m.segments[0].tracks[b.track]
            pts = round((c.block_ms(b) - first_ms) * 10_000)  # ms -> 100 ns
            dur = (t.default_duration_ns or 0) // 100
            key = b.keyframe and t.type == 1
            rec += struct.pack("<IIQQI", b.track, 1 if key else 0, pts, dur, len(frame)) + frame
            counts["frames"] += 1
            counts["keyframes"] += key
    out.write_bytes(bytes(rec))
    return counts


def run_driver(driver: str, server, stream: str, frames: Path, mode: str, workdir: Path) -> dict:
    env = client_env(ACCESS_KEY, SECRET_KEY)
    env["AWS_DEFAULT_REGION"] = REGION
    t0 = time.monotonic()
    try:
        p = subprocess.run([driver, server.endpoint, stream, str(frames), mode], capture_output=True,
                           timeout=DRIVER_TIMEOUT, env=env)
        stdout, stderr, rc = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        stdout, stderr, rc = e.stdout or b"", e.stderr or b"", None
    elapsed = time.monotonic() - t0
    log = stderr.decode(errors="replace")
    (workdir / f"sdk-{mode}.log").write_text(log)
    events = []
    for line in stdout.decode(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            events.append(json.loads(line))
    print(f"producer-c {mode}: rc={rc} in {elapsed:.1f} s, {len(events)} events, SDK log {len(log)} bytes")
    return {"rc": rc, "events": events, "log": log, "elapsed": elapsed}


def describe(run: dict, server) -> str:
    return (f"rc={run['rc']} after {run['elapsed']:.1f} s\nevents:\n"
            + "\n".join(json.dumps(e) for e in run["events"])
            + f"\n--- SDK log (tail) ---\n{run['log'][-6000:]}\n--- server log (tail) ---\n{server.log_tail(40)}")


@pytest.mark.parametrize("mode", ["fast", "realtime"])
def test_producer_c_sdk(server, driver, tmp_path, mode):
    path, why_not = driver
    if path is None:
        pytest.fail(why_not)
    need("ffmpeg")
    frames = tmp_path / "frames.bin"
    counts = write_frame_list(FIXTURE, frames)
    n_fragments = len(mkv.parse_file(FIXTURE).clusters)
    assert counts["keyframes"] == n_fragments  # one GOP per cluster: the SDK cuts a fragment per key frame

    stream = unique_name("producer-c")  # the SDK creates it (DescribeStream 404 -> CreateStream)
    t0 = time.time() - 1
    run = run_driver(path, server, stream, frames, mode, tmp_path)
    why = describe(run, server)
    ev = run["events"]

    stops = [e for e in ev if e["event"] == "stop"]
    assert stops and stops[-1]["status"] == STATUS_SUCCESS, f"stopKinesisVideoStreamSync did not succeed\n{why}"
    assert run["rc"] == 0, why
    done = [e for e in ev if e["event"] == "put_done"]
    assert done and done[0]["frames"] == counts["frames"] and done[0]["put_errors"] == 0, why
    for kind in ("stream_error", "dropped_frame", "dropped_fragment", "put_error", "failed"):
        assert not [e for e in ev if e["event"] == kind], f"SDK reported {kind}\n{why}"
    assert "expired upload handle" not in run["log"], f"the SDK dropped ACKs as of an expired upload handle\n{why}"

    acks = [e for e in ev if e["event"] == "ack"]
    assert all(a["upload_handle"] != INVALID_UPLOAD_HANDLE for a in acks), f"ACK without a live upload handle\n{why}"
    assert not [a for a in acks if a["type"] in ("ERROR", "UNDEFINED")], why
    persisted = [a for a in acks if a["type"] == "PERSISTED"]
    received = [a for a in acks if a["type"] == "RECEIVED"]
    assert len(persisted) == n_fragments, f"{len(persisted)} PERSISTED acks for {n_fragments} fragments\n{why}"
    assert len({a["upload_handle"] for a in acks}) == 1, f"one PutMedia connection expected\n{why}"
    timecodes = [a["timecode"] for a in persisted]
    assert timecodes == sorted(set(timecodes)), why
    assert {a["timecode"] for a in received} == set(timecodes), why
    numbers = {a["fragment_number"] for a in persisted}
    assert len(numbers) == n_fragments and all(x.isdigit() for x in numbers), why

    # ListFragments: exactly the acked fragments, at the acked (absolute, ms) producer timecodes
    am = server.am()
    frags = kvs.wait_fragments(am, stream, n_fragments)
    assert {f["FragmentNumber"] for f in frags} == numbers, f"{frags}\n{why}"
    assert sorted(round(f["ProducerTimestamp"].timestamp() * 1000) for f in frags) == timecodes, frags
    # The SDK starts each fragment at its key frame: FragmentLengthInMilliseconds tiles the stream
    # (docs/choices.md#fragment-length): length(n) = start(n+1) - start(n).
    by_start = sorted(frags, key=lambda f: f["ProducerTimestamp"])
    for a, b in zip(by_start, by_start[1:]):
        gap = round((b["ProducerTimestamp"] - a["ProducerTimestamp"]).total_seconds() * 1000)
        assert a["FragmentLengthInMilliseconds"] == gap, (a, b)

    # HLS ON_DEMAND over the ingest's server-time range: every frame back, byte for byte
    last_end = max(f["ServerTimestamp"].timestamp() + f["FragmentLengthInMilliseconds"] / 1000 for f in frags)
    time.sleep(max(0.05, last_end + 0.1 - time.time()))
    url = on_demand_url(server, stream, t0, time.time())
    for sel in ("v", "a"):
        compare_frames(f"producer-c {mode} {sel}", framemd5(url, sel), framemd5(str(FIXTURE), sel))
