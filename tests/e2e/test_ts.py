"""MPEG_TS sessions (issue 4) with real players: ffmpeg, hls.js in headless Chromium, GStreamer's playbin.

Every test ingests an H.264/AAC fixture with `openkvs put-media` (the `ingested` fixture of test_players.py),
asks GetHLSStreamingSessionURL for ContainerFormat=MPEG_TS, and hands the master URL to the player.

Sessions use PRODUCER_TIMESTAMP (DiscontinuityMode NEVER: one continuous timeline across segments, what a
camera archive plays) unless a test says otherwise; SERVER_TIMESTAMP (DiscontinuityMode ALWAYS, every segment a
new timeline because `put-media --fast` delivers 4 s of media in a moment) is played by ffmpeg too.
"""

from __future__ import annotations

import re
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

import mkv
from conftest import FIXTURES
from test_players import (  # noqa: F401  (ingested is a fixture)
    FIXTURE_TRACKS, assert_kept_playing, check_cross_origin, fetch, framemd5, gst_play, ingested, live_session_url,
    looped_producer, need, play, ts)

TS_FIXTURES = ["h264_aac.mkv", "h264_aac_bframes.mkv", "h264_res_change.mkv", "aac_only.mkv"]
AAC_FRAME_SAMPLES = 1024


def ts_session(server, ingested, name: str, selector: str = "PRODUCER_TIMESTAMP", **kw) -> str:
    stream, t0, t1 = ingested(name)
    # Producer timestamps come from put-media's start time: a wide range holds all four fragments.
    start, end = (t0 - 60, t1 + 60) if selector == "PRODUCER_TIMESTAMP" else (t0, t1)
    r = server.am().get_hls_streaming_session_url(
        StreamName=stream, PlaybackMode="ON_DEMAND", ContainerFormat="MPEG_TS",
        HLSFragmentSelector={"FragmentSelectorType": selector,
                             "TimestampRange": {"StartTimestamp": ts(start), "EndTimestamp": ts(end)}}, **kw)
    return r["HLSStreamingSessionURL"]


def media_playlist(master_url: str) -> tuple[str, str, str]:
    """(master text, media playlist URL, media playlist text)."""
    master = fetch(master_url).decode()
    uri = [ln for ln in master.splitlines() if ln and not ln.startswith("#")]
    assert len(uri) == 1, master
    url = urllib.parse.urljoin(master_url, uri[0])
    return master, url, fetch(url).decode()


def decoded_video_md5(src: str, tmp_path=None) -> list[str]:
    """md5 of every decoded video frame (`-f framemd5` decoding, native sizes)."""
    p = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", src, "-map", "0:v", "-autoscale", "0",
                        "-f", "framemd5", "-"], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, f"ffmpeg framemd5 (decoding) of {src[:120]}: {p.stderr[-3000:]}"
    return [ln.rsplit(",", 1)[1].strip() for ln in p.stdout.splitlines() if ln.strip() and not ln.startswith("#")]


def source_video_md5(name: str, tmp_path) -> list[str]:
    """The source's decoded frames, each Segment of the MKV (h264_res_change.mkv has two: new Tracks and
    CodecPrivate) decoded on its own: ffmpeg's matroska demuxer ignores a second Segment's codec private data."""
    data = (FIXTURES / name).read_bytes()
    starts = [m.start() for m in re.finditer(re.escape(bytes([0x1a, 0x45, 0xdf, 0xa3])), data)] + [len(data)]
    out = []
    for i, (a, b) in enumerate(zip(starts, starts[1:])):
        part = tmp_path / f"source_part{i}.mkv"
        part.write_bytes(data[a:b])
        out += decoded_video_md5(str(part))
    return out


def decoded_audio_samples(src: str) -> int:
    p = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", src, "-map", "0:a", "-f", "s16le", "-ac", "1",
                        "-acodec", "pcm_s16le", "-"], capture_output=True, timeout=180)
    assert p.returncode == 0, p.stderr[-3000:]
    return len(p.stdout) // 2


@pytest.mark.parametrize("name", TS_FIXTURES)
def test_ts_playlists_and_segments(server, ingested, name):
    """One muxed playlist: master without EXT-X-MEDIA and with every track's codec; media playlist version 3, no
    EXT-X-MAP, getTSFragment.ts segments of whole 188-byte packets served as video/mp2t."""
    url = ts_session(server, ingested, name)
    master, media_url, text = media_playlist(url)
    print(master, text, sep="\n")
    assert "#EXT-X-MEDIA" not in master and "TrackNumber" not in master
    codecs = re.search(r'CODECS="([^"]+)"', master).group(1).split(",")
    want = ["avc1", "mp4a"] if "v" in FIXTURE_TRACKS[name] else ["mp4a"]
    assert [c.split(".")[0] for c in codecs] == want, codecs
    assert text.startswith("#EXTM3U\n#EXT-X-VERSION:3\n") and "#EXT-X-MAP" not in text, text
    segments = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert len(segments) == 4 and all(s.startswith("getTSFragment.ts?FragmentNumber=") for s in segments)
    if name == "h264_res_change.mkv":
        assert text.count("#EXT-X-DISCONTINUITY\n") == 1, "a discontinuity at the codec change"
    total = 0
    for s in segments:
        req = urllib.request.Request(urllib.parse.urljoin(media_url, s), headers={"Origin": "http://player.example"})
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
            assert r.headers["Content-Type"] == "video/mp2t"
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            assert int(r.headers["Content-Length"]) == len(body)
        assert len(body) % 188 == 0 and all(body[i] == 0x47 for i in range(0, len(body), 188))
        total += len(body)
    print(f"{name}: {total} bytes of TS for {(FIXTURES / name).stat().st_size} bytes of MKV")


@pytest.mark.parametrize("selector", ["PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"])
@pytest.mark.parametrize("name", TS_FIXTURES)
def test_ffmpeg_decodes_ts_session(server, ingested, name, selector, tmp_path):
    """`ffmpeg -v error -i URL -f null -` prints nothing; the decoded video frames hash like the source's decoded
    frames; the audio decodes to 1024 samples per stored AAC frame."""
    need("ffmpeg")
    url = ts_session(server, ingested, name, selector)
    p = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-f", "null", "-"],
                       capture_output=True, text=True, timeout=180)
    print(f"{name} {selector}: ffmpeg -f null rc={p.returncode}, stderr {len(p.stderr)} bytes")
    assert p.returncode == 0 and not p.stderr.strip(), p.stderr[-3000:]
    if "v" in FIXTURE_TRACKS[name]:
        got, want = decoded_video_md5(url), source_video_md5(name, tmp_path)
        print(f"{name} {selector}: {len(got)} decoded frames from the session, {len(want)} from the source")
        assert got == want, "decoded frames differ from the source's"
    frames = len(framemd5(str(FIXTURES / name), "a"))
    samples = decoded_audio_samples(url)
    print(f"{name} {selector}: {samples} audio samples decoded for {frames} AAC frames")
    assert samples == frames * AAC_FRAME_SAMPLES


@pytest.mark.parametrize("name", TS_FIXTURES)
def test_hlsjs_plays_ts_on_demand_to_end(server, ingested, name):
    """hls.js (transmuxing TS to fMP4 itself) in headless Chromium, page on another origin: plays to `ended`."""
    r = play(ts_session(server, ingested, name), "ondemand", "--timeout", 60)
    check_cross_origin(r)
    pl = r["player"]
    assert r["fatal"] is None, f"fatal hls.js error: {r['fatal']}"
    assert not pl["videoErrors"], pl["videoErrors"]
    assert r["ended"], f"did not reach `ended` (currentTime {r['finalCurrentTime']}, stuck {r.get('stalledMs')} ms)"
    print(f"{name}: ended at currentTime {r['finalCurrentTime']:.3f} s")
    assert 3.8 <= r["finalCurrentTime"] <= 4.3, r["finalCurrentTime"]
    assert any(k.startswith("getTSFragment.ts 200") for k in r["requests"]["byPath"]), r["requests"]
    last = r["samples"][-1]
    if "v" in FIXTURE_TRACKS[name]:
        assert last["decodedFrames"] >= 118, last
    if name == "h264_res_change.mkv":
        assert (last["videoWidth"], last["videoHeight"]) == (640, 360), "resolution change not followed"


@pytest.mark.parametrize("name", ["h264_aac.mkv", "h264_aac_bframes.mkv"])
def test_hlsjs_plays_ts_with_discontinuities_to_end(server, ingested, name):
    """SERVER_TIMESTAMP: DiscontinuityMode ALWAYS, an EXT-X-DISCONTINUITY before every segment. hls.js realigns
    each segment (B-frames: decode times one frame before the first picture) and still plays to `ended`."""
    url = ts_session(server, ingested, name, "SERVER_TIMESTAMP")
    assert fetch(media_playlist(url)[1]).decode().count("#EXT-X-DISCONTINUITY\n") == 4
    r = play(url, "ondemand", "--timeout", 60)
    check_cross_origin(r)
    assert r["fatal"] is None, f"fatal hls.js error: {r['fatal']}"
    assert r["ended"], f"did not reach `ended` (currentTime {r['finalCurrentTime']}, stuck {r.get('stalledMs')} ms)"
    print(f"{name} ALWAYS: ended at currentTime {r['finalCurrentTime']:.3f} s")
    assert r["samples"][-1]["decodedFrames"] >= 118, r["samples"][-1]


def test_hlsjs_plays_ts_live(server, tmp_path):
    """A LIVE MPEG_TS session fed in real time (h264_aac.mkv looped by a paced PutMedia) keeps hls.js playing for
    20 s with no fatal error and no long stall."""
    stream, producer, log = looped_producer(server, tmp_path)
    try:
        t = time.monotonic()
        url = live_session_url(server, stream, ContainerFormat="MPEG_TS")
        print(f"live: session URL after {time.monotonic() - t:.1f} s of paced ingest")
        r = play(url, "live", "--duration", 22, "--start-timeout", 30, timeout=120)
        assert producer.poll() is None, f"producer ended early: {log.read_text()[-2000:]}"
    finally:
        producer.kill()
        producer.wait()
    assert_kept_playing(r, "live TS hls.js")
    assert any(k.startswith("getTSFragment.ts 200") for k in r["requests"]["byPath"]), r["requests"]


@pytest.mark.parametrize("name", TS_FIXTURES)
def test_gstreamer_playbin_plays_ts_to_eos(server, ingested, name):
    """`gst-launch-1.0 playbin uri=<master URL>` (hlsdemux + tsdemux + libav) reaches EOS with exit 0 and no
    ERROR, having rendered most of every track (the -v last-message counts are approximate)."""
    out = gst_play(ts_session(server, ingested, name))
    assert out["rc"] == 0 and out["eos"] and not out["errors"], out
    tracks = FIXTURE_TRACKS[name]
    if "v" in tracks:
        assert out["vsink"]["buffers"] >= 108 and out["vsink"]["seconds"] >= 3.6, out["vsink"]
    if "a" in tracks:
        assert out["asink"]["buffers"] >= 169 and out["asink"]["seconds"] >= 3.6, out["asink"]


def test_gstreamer_playbin_plays_ts_in_real_time(server, ingested):
    """playbin with clock-synced sinks plays the 4 s TS session in about 4 s (timestamps near zero)."""
    out = gst_play(ts_session(server, ingested, "h264_aac.mkv"), sync=True, timeout=30)
    assert out["rc"] == 0 and out["eos"] and not out["errors"], out
    assert out["seconds"] <= 10, f"4 s of media took {out['seconds']} s to play"
