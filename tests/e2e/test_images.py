"""GetImages (issue 11, items 3 and 5): boto3's get_images and its paginator against openkvs; every image decoded
with Pillow at the size asked and compared with ffmpeg's own decode of the ingested fixture at the same time
(docs/wire.md#getimages); NO_MEDIA in a gap between two PutMedia bursts, MEDIA_ERROR for an audio-only stream,
and every documented error with its code.

PNG images are compared exactly enough to tell neighbouring frames apart (mean absolute difference < 1.5 per
channel against the expected frame: openkvs converts Y'CbCr to RGB itself, so values may differ from
swscale's by a rounding step, and the expected frame must be the closest of all the fixture's frames); JPEG
images by a mean difference < 8 (lossy at quality 80).
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
from datetime import datetime, timezone

import pytest
from botocore.exceptions import ClientError
from PIL import Image

import kvs
from conftest import FIXTURES

W, H = 320, 240


def ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


def reference(name: str) -> tuple[list[int], list[bytes]]:
    """ffmpeg's decode of a fixture's video: (presentation times in ms, rgb24 frames), in presentation order."""
    path = FIXTURES / name
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time",
                            "-of", "json", str(path)], check=True, capture_output=True).stdout
    pts = [round(float(f["pts_time"]) * 1000) for f in json.loads(probe)["frames"]]
    raw = subprocess.run(["ffmpeg", "-v", "error", "-threads", "1", "-i", str(path), "-map", "0:v:0",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    size = W * H * 3
    frames = [raw[i:i + size] for i in range(0, len(raw), size)]
    assert len(frames) == len(pts), (len(frames), len(pts))
    order = sorted(range(len(pts)), key=lambda i: pts[i])
    return [pts[i] for i in order], [frames[i] for i in order]


def mad(a: bytes, b: bytes) -> float:
    return sum(abs(x - y) for x, y in zip(a, b)) / len(a)


def on_screen(pts: list[int], offset_ms: float) -> int:
    return max(i for i, p in enumerate(pts) if p <= offset_ms)


def decode(image: dict, fmt: str) -> "Image.Image":
    assert "Error" not in image, image
    data = base64.b64decode(image["ImageContent"])
    img = Image.open(io.BytesIO(data))
    assert img.format == fmt
    return img


@pytest.fixture(scope="module")
def streams(server):
    """name -> (stream, N) for fixtures ingested once with producer start N - 0.1 (N a whole second: botocore sends
    whole-second timestamps, so sample times are whole seconds, each at offset 100 ms + k × 200 ms into the media,
    never in the ~20 ms between a fragment's start and its key frame); 'gap' holds h264_aac twice, 10 s apart."""
    out = {}
    base = 1_700_000_000
    for i, name in enumerate(["h264_aac.mkv", "h264_aac_bframes.mkv", "h265.mkv", "aac_only.mkv"]):
        stream, _ = server.create_stream()
        start = base + 100 * i
        pm = kvs.put_media_body(server.endpoint, stream, (FIXTURES / name).read_bytes(), producer_start=start - 0.1)
        assert pm.status == 200 and not pm.errors, pm.describe()
        kvs.wait_fragments(server.am(), stream, 4)
        out[name] = (stream, start)
    stream, _ = server.create_stream()
    start = base + 1000
    for burst in (start - 0.1, start + 9.9):
        pm = kvs.put_media_body(server.endpoint, stream, (FIXTURES / "h264_aac.mkv").read_bytes(),
                                producer_start=burst)
        assert pm.status == 200 and not pm.errors, pm.describe()
    kvs.wait_fragments(server.am(), stream, 8)
    out["gap"] = (stream, start)
    return out


def all_pages(am, **kw) -> tuple[list[dict], list[int]]:
    images, sizes = [], []
    for page in am.get_paginator("get_images").paginate(**kw):
        sizes.append(len(page["Images"]))
        images += page["Images"]
    return images, sizes


@pytest.mark.parametrize("name", ["h264_aac.mkv", "h264_aac_bframes.mkv", "h265.mkv"])
def test_png_pages_are_the_frames_on_screen(server, streams, name):
    stream, start = streams[name]
    pts, frames = reference(name)
    # Offsets 100, 300, …, 3100 ms into the media: 16 samples, End included.
    images, sizes = all_pages(server.am(), StreamName=stream, ImageSelectorType="PRODUCER_TIMESTAMP",
                              StartTimestamp=ts(start), EndTimestamp=ts(start + 3),
                              SamplingInterval=200, Format="PNG", PaginationConfig={"PageSize": 7})
    assert sizes == [7, 7, 2]
    assert [round(i["TimeStamp"].timestamp() * 1000) for i in images] == [start * 1000 + 200 * k for k in range(16)]
    for k, image in enumerate(images):
        img = decode(image, "PNG")
        assert img.size == (W, H) and img.mode == "RGB"
        got = img.tobytes()
        want = on_screen(pts, 100 + 200 * k)
        diffs = [mad(got, f) for f in frames]
        assert diffs[want] < 1.5, (k, want, diffs[want])
        assert min(range(len(frames)), key=diffs.__getitem__) == want, (k, want, sorted(diffs)[:3])


def test_jpeg_sizes_and_quality(server, streams):
    stream, start = streams["h264_aac.mkv"]
    pts, frames = reference("h264_aac.mkv")
    am = server.am()
    args = dict(StreamName=stream, ImageSelectorType="PRODUCER_TIMESTAMP", StartTimestamp=ts(start + 1),
                EndTimestamp=ts(start + 1), SamplingInterval=200, Format="JPEG")
    r = am.get_images(**args)
    assert "NextToken" not in r and len(r["Images"]) == 1
    img = decode(r["Images"][0], "JPEG").convert("RGB")
    assert img.size == (W, H)
    assert mad(img.tobytes(), frames[on_screen(pts, 1100)]) < 8
    # One of the two: the aspect ratio is kept. Both: stretched to exactly that size.
    assert decode(am.get_images(**args, HeightPixels=120)["Images"][0], "JPEG").size == (160, 120)
    assert decode(am.get_images(**args, WidthPixels=160)["Images"][0], "JPEG").size == (160, 120)
    assert decode(am.get_images(**args, WidthPixels=100)["Images"][0], "JPEG").size == (100, 75)
    assert decode(am.get_images(**args, HeightPixels=100)["Images"][0], "JPEG").size == (133, 100)
    assert decode(am.get_images(**args, WidthPixels=100, HeightPixels=50)["Images"][0], "JPEG").size == (100, 50)
    big = am.get_images(**args, HeightPixels=720)["Images"][0]
    assert decode(big, "JPEG").size == (960, 720)
    low = len(am.get_images(**args, FormatConfig={"JPEGQuality": "5"})["Images"][0]["ImageContent"])
    default = len(r["Images"][0]["ImageContent"])
    high = len(am.get_images(**args, FormatConfig={"JPEGQuality": "100"})["Images"][0]["ImageContent"])
    assert low < default < high


def test_server_timestamps_and_default_page_size(server, streams):
    stream, _ = streams["h264_aac.mkv"]
    am = server.am()
    frags = sorted(kvs.all_fragments(am, stream), key=lambda f: f["ServerTimestamp"])
    s0 = frags[0]["ServerTimestamp"].timestamp()
    # The fragments arrived within milliseconds (server times), each 1 s long: the first whole second after
    # the first one's arrival is covered. 31 samples over 6 s: pages of 25 (the default) then 6; MaxResults
    # above 25 still pages by 25.
    first = int(s0) + 1
    for extra in ({}, {"MaxResults": 100}):
        r = am.get_images(StreamName=stream, ImageSelectorType="SERVER_TIMESTAMP", StartTimestamp=ts(first),
                          EndTimestamp=ts(first + 6), SamplingInterval=200, Format="JPEG", **extra)
        assert len(r["Images"]) == 25 and r["NextToken"]
    images, sizes = all_pages(am, StreamName=stream, ImageSelectorType="SERVER_TIMESTAMP",
                              StartTimestamp=ts(first), EndTimestamp=ts(first + 6), SamplingInterval=200,
                              Format="JPEG")
    assert sizes == [25, 6]
    covered = [i for i in images if i["TimeStamp"].timestamp() < s0 + 1]
    assert covered and all("ImageContent" in i for i in covered), images[:3]
    assert all(i.get("Error") == "NO_MEDIA" for i in images if i["TimeStamp"].timestamp() >= s0 + 2)


def test_no_media_in_a_gap_and_media_error_for_audio(server, streams):
    stream, start = streams["gap"]
    am = server.am()
    images, _ = all_pages(am, StreamName=stream, ImageSelectorType="PRODUCER_TIMESTAMP",
                          StartTimestamp=ts(start + 3), EndTimestamp=ts(start + 10),
                          SamplingInterval=1000, Format="JPEG")
    assert [i.get("Error") for i in images] == [None] + ["NO_MEDIA"] * 6 + [None]
    assert all("ImageContent" not in i for i in images[1:7])
    # Before the first fragment: NO_MEDIA too.
    r = am.get_images(StreamName=stream, ImageSelectorType="PRODUCER_TIMESTAMP", StartTimestamp=ts(start - 5),
                      EndTimestamp=ts(start - 4), SamplingInterval=500, Format="PNG")
    assert [i.get("Error") for i in r["Images"]] == ["NO_MEDIA"] * 3
    stream, start = streams["aac_only.mkv"]
    r = am.get_images(StreamName=stream, ImageSelectorType="PRODUCER_TIMESTAMP", StartTimestamp=ts(start),
                      EndTimestamp=ts(start + 1), SamplingInterval=500, Format="PNG")
    assert [i.get("Error") for i in r["Images"]] == ["MEDIA_ERROR"] * 3


def error_of(call) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as e:
        call()
    err = e.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"], err["Error"].get("Message", "")


def test_errors(server, streams):
    stream, start = streams["h264_aac.mkv"]
    am = server.am()
    good = dict(StreamName=stream, ImageSelectorType="PRODUCER_TIMESTAMP", StartTimestamp=ts(start),
                EndTimestamp=ts(start + 2), SamplingInterval=200, Format="JPEG")

    def call(**changes):
        args = {**good, **changes}
        return lambda: am.get_images(**{k: v for k, v in args.items() if v is not None})

    assert error_of(call(StreamName="no-such-stream"))[:2] == ("ResourceNotFoundException", 404)
    empty, _ = server.create_stream(retention=0)
    assert error_of(call(StreamName=empty))[:2] == ("NoDataRetentionException", 400)
    invalid = {
        "range over 300 s": call(EndTimestamp=ts(start + 301)),
        "end before start": call(EndTimestamp=ts(start - 1)),
        "interval under 200": call(SamplingInterval=199),
        "no interval": call(SamplingInterval=None),
        "width too large": call(WidthPixels=3841, HeightPixels=100),
        "height too large": call(HeightPixels=2161),
        "quality 0": call(FormatConfig={"JPEGQuality": "0"}),
        "quality 101": call(FormatConfig={"JPEGQuality": "101"}),
        "format": call(Format="GIF"),
        "selector": call(ImageSelectorType="NOW"),
        "max results": call(MaxResults=101),
        "token garbage": call(NextToken="AAAA"),
        "no stream": call(StreamName=None),
    }
    for what, c in invalid.items():
        code, status, _ = error_of(c)
        assert (code, status) == ("InvalidArgumentException", 400), what
    token = am.get_images(**good, MaxResults=3)["NextToken"]
    code, _, message = error_of(call(NextToken=token, SamplingInterval=400))
    assert code == "InvalidArgumentException" and "same values" in message
    # The same token with the same request resumes.
    r = am.get_images(**good, MaxResults=3, NextToken=token)
    assert round(r["Images"][0]["TimeStamp"].timestamp() * 1000) == round(start * 1000) + 600


@pytest.mark.parametrize("extra", [[], ["--page-size", "4"], ["--max-items", "5"], ["--no-paginate", "--max-results", "3"],
                                   ["--output", "text"]])
def test_cli_get_images_matches_aws(server, streams, extra):
    """`openkvs kinesis-video-archived-media get-images` (from the trimmed botocore model, with NextToken paging)
    prints what the AWS CLI prints, also for a service error."""
    from test_cli import same

    stream, start = streams["gap"]
    args = ["kinesis-video-archived-media", "get-images", "--stream-name", stream,
            "--image-selector-type", "PRODUCER_TIMESTAMP", "--start-timestamp", str(start + 2),
            "--end-timestamp", str(start + 12), "--sampling-interval", "1000", "--format", "JPEG",
            "--height-pixels", "24", *extra]
    out = same(server, *args, "--region", "us-west-2")
    assert "NO_MEDIA" in out and ("ImageContent" in out or "IMAGES" in out)
    # A service error: a sampling interval under 200 ms (the model sets no minimum, so no client refuses it).
    refused = [("150" if a == "1000" else a) for a in args[:len(args) - len(extra)]]
    same(server, *refused, "--region", "us-west-2", expect_rc=254)
