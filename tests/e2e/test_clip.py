"""GetClip with real clients (issue 10, items 3 and 5): boto3, the AWS JS SDK v3, the AWS CLI and Chromium's
<video> element read the MP4 openkvs builds from the archive; ffprobe/ffmpeg check it (moov before mdat, every
frame byte-exact against the ingested fixture); every documented error comes back with its code and status.

Tools: ffmpeg/ffprobe, the AWS CLI, node + `npm ci` in tests/e2e/players (JS SDK, playwright-core),
/usr/bin/chromium; scripts/test.sh installs them when missing.
"""

from __future__ import annotations

import functools
import http.server
import json
import math
import struct
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

import kvs
from conftest import FIXTURES, client_env
from test_hls_session import _set, body_with_tracks, ingest
from test_players import PLAYERS, compare_frames, framemd5, need, play, stream_kinds

# fixture -> its streams, as ffprobe names them ('v' video, 'a' audio)
CLIP_FIXTURES = {"h264_aac.mkv": ("a", "v"), "h264_aac_bframes.mkv": ("a", "v"), "h265.mkv": ("v",)}
H264_AAC = FIXTURES / "h264_aac.mkv"


def ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


def selector(kind: str, start: float, end: float) -> dict:
    return {"FragmentSelectorType": kind, "TimestampRange": {"StartTimestamp": ts(start), "EndTimestamp": ts(end)}}


@pytest.fixture(scope="module")
def archived(server):
    """fixture name -> (stream, fragments as ListFragments returns them, oldest first), ingested once."""
    cache = {}

    def get(name: str):
        if name not in cache:
            stream, _, t0, t1 = ingest(server, (FIXTURES / name).read_bytes())
            frags = kvs.wait_fragments(server.am(), stream, 4)
            assert len(frags) == 4, frags
            cache[name] = (stream, sorted(frags, key=lambda f: f["ProducerTimestamp"]))
        return cache[name]

    return get


def starts(frags: list[dict], kind: str) -> list[float]:
    key = "ProducerTimestamp" if kind == "PRODUCER_TIMESTAMP" else "ServerTimestamp"
    return [f[key].timestamp() for f in frags]


def whole_range(frags: list[dict], kind: str) -> tuple[int, int]:
    """The whole seconds around the fragments' starts: boto3 sends GetClip's timestamps as whole epoch seconds
    (botocore's default timestamp precision), so a range must be whole seconds to mean what it says."""
    s = starts(frags, kind)
    return math.floor(min(s)), math.ceil(max(s))


def boto3_clip(server, stream: str, kind: str, start: float, end: float) -> tuple[dict, bytes]:
    r = server.am().get_clip(StreamName=stream, ClipFragmentSelector=selector(kind, start, end))
    return r, r["Payload"].read()


def top_level_boxes(data: bytes) -> list[tuple[str, int]]:
    """(type, size) of the file's top-level boxes, read independently of the server's writer."""
    out, at = [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        if size == 1:
            size = struct.unpack(">Q", data[at + 8:at + 16])[0]
        assert size >= 8, f"box {kind} at {at} has size {size}"
        out.append((kind.decode("latin-1"), size))
        at += size
    assert at == len(data), f"boxes end at {at}, the file at {len(data)}"
    return out


def check_mp4(path: Path, name: str):
    """moov before mdat, the whole file is boxes; ffprobe sees the fixture's streams; every frame of every stream
    equals the fixture's, byte for byte, in order."""
    boxes = [k for k, _ in top_level_boxes(path.read_bytes())]
    assert boxes == ["ftyp", "moov", "mdat"], boxes
    assert stream_kinds(str(path)) == sorted(CLIP_FIXTURES[name])
    for sel in CLIP_FIXTURES[name]:
        compare_frames(f"{name} {sel} (clip)", framemd5(str(path), sel), framemd5(str(FIXTURES / name), sel))


@pytest.mark.parametrize("kind", ["PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"])
@pytest.mark.parametrize("name", sorted(CLIP_FIXTURES))
def test_boto3_clip_is_the_ingested_frames(server, archived, name, kind, tmp_path):
    need("ffmpeg")
    stream, frags = archived(name)
    start, end = whole_range(frags, kind)
    r, data = boto3_clip(server, stream, kind, start, end)
    print(f"{name} {kind}: [{start}, {end}] of {[f['FragmentNumber'] for f in frags]}: {len(data)} bytes")
    assert r["ContentType"] == "video/mp4"
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert int(r["ResponseMetadata"]["HTTPHeaders"]["content-length"]) == len(data)
    out = tmp_path / "clip.mp4"
    out.write_bytes(data)
    check_mp4(out, name)
    duration = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                                     str(out)], capture_output=True, text=True, check=True).stdout)
    print(f"{name} {kind}: {len(data)} bytes, {duration:.3f} s")
    assert 3.9 <= duration <= 4.2, duration


def test_range_selects_whole_fragments_by_start(server, archived, tmp_path):
    """Start and End are inclusive bounds on fragment starts: a range over the middle fragments' starts gives the
    frames of exactly the fragments starting in it (each fixture fragment is one 30-frame GOP)."""
    stream, frags = archived("h264_aac.mkv")
    start, end = whole_range(frags[1:3], "PRODUCER_TIMESTAMP")
    inside = [i for i, t in enumerate(starts(frags, "PRODUCER_TIMESTAMP")) if start <= t <= end]
    assert 1 in inside and 2 in inside and inside == list(range(inside[0], inside[-1] + 1)), inside
    _, data = boto3_clip(server, stream, "PRODUCER_TIMESTAMP", start, end)
    out = tmp_path / "middle.mp4"
    out.write_bytes(data)
    video = framemd5(str(out), "v")
    source = framemd5(str(FIXTURES / "h264_aac.mkv"), "v")
    assert video == source[30 * inside[0]:30 * (inside[-1] + 1)], (len(video), inside)


def test_js_sdk_v3_and_aws_cli_write_the_same_file(server, archived, tmp_path):
    stream, frags = archived("h264_aac.mkv")
    start, end = whole_range(frags, "SERVER_TIMESTAMP")
    _, want = boto3_clip(server, stream, "SERVER_TIMESTAMP", start, end)

    js_out = tmp_path / "js.mp4"
    p = subprocess.run(["node", str(PLAYERS / "get_clip.mjs"), server.endpoint, stream, "SERVER_TIMESTAMP",
                        str(start), str(end), str(js_out)], capture_output=True, text=True, timeout=60,
                       env=client_env(), cwd=PLAYERS)
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout) == {"contentType": "video/mp4", "bytes": len(want)}
    assert js_out.read_bytes() == want

    cli_out = tmp_path / "cli.mp4"
    rc, doc, err = server.aws("kinesis-video-archived-media", "get-clip", "--stream-name", stream,
                              "--clip-fragment-selector",
                              json.dumps({"FragmentSelectorType": "SERVER_TIMESTAMP",
                                          "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}}),
                              str(cli_out))
    assert rc == 0, err
    assert doc == {"ContentType": "video/mp4"}
    assert cli_out.read_bytes() == want


def serve_directory(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


@pytest.mark.parametrize("name", ["h264_aac.mkv", "h264_aac_bframes.mkv"])
def test_clip_plays_to_the_end_in_chromium(server, archived, name, tmp_path):
    """The clip, served over plain HTTP (no Range support: the browser must play it front to back, which only
    works with moov first) by a server on another origin than the page, plays in a <video> element to `ended`."""
    stream, frags = archived(name)
    start, end = whole_range(frags, "PRODUCER_TIMESTAMP")
    _, data = boto3_clip(server, stream, "PRODUCER_TIMESTAMP", start, end)
    (tmp_path / "clip.mp4").write_bytes(data)
    httpd, origin = serve_directory(tmp_path)
    try:
        r = play(f"{origin}/clip.mp4", "file", "--timeout", 60)
    finally:
        httpd.shutdown()
    assert r["pageOrigin"] != r["mediaOrigin"]
    pl = r["player"]
    assert not pl["videoErrors"], pl["videoErrors"]
    assert r["ended"], f"did not reach `ended` (currentTime {r['finalCurrentTime']}, stuck {r.get('stalledMs')} ms)"
    assert 3.9 <= r["finalCurrentTime"] <= 4.2, r["finalCurrentTime"]
    last = r["samples"][-1]
    assert last["decodedFrames"] >= 118, last


# -- errors ---------------------------------------------------------------------------------------------------


def clip_error(server, **kw) -> tuple[str, int, str]:
    try:
        server.am().get_clip(**kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"][
            "Message"]
    pytest.fail(f"GetClip {kw} succeeded")


def test_unknown_stream_and_empty_range(server, archived):
    stream, frags = archived("h264_aac.mkv")
    now = time.time()
    assert clip_error(server, StreamName="no-such-stream", ClipFragmentSelector=selector(
        "SERVER_TIMESTAMP", now - 60, now - 1))[:2] == ("ResourceNotFoundException", 404)
    before = math.floor(frags[0]["ServerTimestamp"].timestamp()) - 3600
    code, status, message = clip_error(server, StreamName=stream, ClipFragmentSelector=selector(
        "SERVER_TIMESTAMP", before, before + 60))
    assert (code, status) == ("ResourceNotFoundException", 404), message


def test_invalid_ranges(server, archived):
    stream, frags = archived("h264_aac.mkv")
    start = math.floor(frags[0]["ServerTimestamp"].timestamp())
    cases = [
        selector("SERVER_TIMESTAMP", start, start),  # End not after Start
        selector("SERVER_TIMESTAMP", start, start - 1),
        selector("PRODUCER_TIMESTAMP", start, start + 24 * 3600 + 1),  # more than 24 h
        selector("SERVER_TIMESTAMP", start, time.time() + 3600),  # End in the future
        {"FragmentSelectorType": "NOPE", "TimestampRange": selector("SERVER_TIMESTAMP", start, start + 1)[
            "TimestampRange"]},
    ]
    for clip_selector in cases:
        code, status, message = clip_error(server, StreamName=stream, ClipFragmentSelector=clip_selector)
        assert (code, status) == ("InvalidArgumentException", 400), (clip_selector, message)
    # PRODUCER_TIMESTAMP may end in the future (a producer clock ahead of the server's).
    r, data = boto3_clip(server, stream, "PRODUCER_TIMESTAMP", whole_range(frags, "PRODUCER_TIMESTAMP")[0],
                         time.time() + 3600)
    assert r["ContentType"] == "video/mp4" and data[4:8] == b"ftyp"


def test_no_data_retention(server):
    name, _, t0, t1 = ingest(server, H264_AAC.read_bytes(), retention=0)
    code, status, message = clip_error(server, StreamName=name, ClipFragmentSelector=selector(
        "SERVER_TIMESTAMP", t0, t1))
    assert (code, status) == ("NoDataRetentionException", 400), message


@pytest.mark.parametrize("body, code", [
    (lambda: (FIXTURES / "aac_only.mkv").read_bytes(), "UnsupportedStreamMediaTypeException"),
    (lambda: body_with_tracks(H264_AAC, _set(1, codec_id="V_MPEG4/ISO/XYZ")), "UnsupportedStreamMediaTypeException"),
    (lambda: body_with_tracks(H264_AAC, _set(2, codec_private=b"")), "MissingCodecPrivateDataException"),
    (lambda: body_with_tracks(H264_AAC, _set(1, codec_private=b"")), "MissingCodecPrivateDataException"),
    (lambda: body_with_tracks(H264_AAC, _set(1, codec_private=b"\x00\x00\x00\x01\x67\x64")),
     "InvalidCodecPrivateDataException"),
    (lambda: body_with_tracks(H264_AAC, _set(2, codec_private=b"\x00")), "InvalidCodecPrivateDataException"),
], ids=["audio-only", "video-codec", "no-audio-cpd", "no-video-cpd", "bad-avcc", "bad-asc"])
def test_media_errors(server, body, code):
    name, _, t0, t1 = ingest(server, body())
    got, status, message = clip_error(server, StreamName=name, ClipFragmentSelector=selector(
        "SERVER_TIMESTAMP", t0, t1))
    assert (got, status) == (code, 400), message
    if code == "MissingCodecPrivateDataException":
        assert message.startswith("Missing codec private data in fragment for track"), message


def test_codec_private_data_change_inside_the_range(server, tmp_path):
    """h264_res_change.mkv changes its avcC after two fragments: a clip across the change is refused, naming the
    fragment where it changes; clips on either side of it are served."""
    name, _, t0, t1 = ingest(server, (FIXTURES / "h264_res_change.mkv").read_bytes())
    frags = sorted(kvs.wait_fragments(server.am(), name, 4), key=lambda f: f["ServerTimestamp"])
    code, status, message = clip_error(server, StreamName=name, ClipFragmentSelector=selector(
        "SERVER_TIMESTAMP", t0, t1))
    assert (code, status) == ("InvalidCodecPrivateDataException", 400), message
    assert frags[2]["FragmentNumber"] in message, message
    frags.sort(key=lambda f: f["ProducerTimestamp"])
    producer_starts = starts(frags, "PRODUCER_TIMESTAMP")
    for part in (frags[:2], frags[2:]):
        start, end = whole_range(part, "PRODUCER_TIMESTAMP")
        inside = [i for i, t in enumerate(producer_starts) if start <= t <= end]
        assert inside in ([0, 1], [2, 3]), (inside, producer_starts)
        _, data = boto3_clip(server, name, "PRODUCER_TIMESTAMP", start, end)
        out = tmp_path / "part.mp4"
        out.write_bytes(data)
        assert len(framemd5(str(out), "v")) == 60
