"""Fast readers get the whole recording with the default settings (docs/choices.md#hls-rate-limits).

A user who downloads an archive range with `ffmpeg -i URL -c copy out.mkv`, or a GStreamer pipeline that reads
as fast as it can, fetches segments far faster than AWS's per-session quotas (20 GetMP4MediaFragment/s). ffmpeg
skips a segment that is answered with an error and still exits 0, so a throttled server hands the user a
recording with holes. openkvs does not throttle by default: a 300-fragment ON_DEMAND session read flat out by
ffmpeg and by GStreamer gives back every frame of both tracks byte-exact.
"""

from __future__ import annotations

import hashlib
import subprocess
import time

import pytest

import kvs
import mkv
from test_players import framemd5, compare_frames, media_playlist_urls, need, on_demand_url

FRAGMENTS = 300


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory) -> mkv.Mkv:
    """150 s of 160x120 H.264 (GOP 15 = 0.5 s, so one cluster = one fragment every 0.5 s) + AAC: 300 fragments."""
    need("ffmpeg")
    path = tmp_path_factory.mktemp("long") / "long.mkv"
    p = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(FRAGMENTS // 2), "-map", "0:v", "-map", "1:a",
         "-c:v", "libx264", "-threads", "1", "-preset", "veryfast", "-pix_fmt", "yuv420p",
         "-g", "15", "-keyint_min", "15", "-sc_threshold", "0", "-bf", "0",
         "-c:a", "aac", "-b:a", "64k", "-ac", "2",
         "-cluster_time_limit", "1000000", "-cluster_size_limit", "1000000000", "-f", "matroska", str(path)],
        capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    parsed = mkv.parse_file(path)
    assert len(parsed.clusters) == FRAGMENTS, len(parsed.clusters)
    parsed.path = path
    return parsed


@pytest.fixture(scope="module")
def long_session(server, long_recording) -> str:
    """The recording ingested (put-media --fast), as a default ON_DEMAND session URL over all of it."""
    stream, _ = server.create_stream()
    t0 = time.time() - 1
    rc, summary, err = server.put_media(stream, long_recording.path, "--fast", timeout=300)
    assert rc == 0, f"put-media: rc={rc} {summary} {err[-2000:]}"
    frags = kvs.wait_fragments(server.am(), stream, FRAGMENTS, timeout=30)
    assert len(frags) == FRAGMENTS, len(frags)
    time.sleep(1.0)  # past the end of the last fragment
    return on_demand_url(server, stream, t0, time.time(), MaxMediaPlaylistFragmentResults=FRAGMENTS)


def test_ffmpeg_copies_every_frame_of_a_300_fragment_session(long_recording, long_session, tmp_path):
    """`ffmpeg -i URL -c copy out.mkv`, as fast as it reads: no segment refused, every packet of both tracks."""
    out = tmp_path / "out.mkv"
    p = subprocess.run(["ffmpeg", "-nostdin", "-v", "warning", "-i", long_session, "-map", "0", "-c", "copy",
                        str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Failed to open segment" not in p.stderr and "HTTP error" not in p.stderr, p.stderr[-3000:]
    src = str(long_recording.path)
    for sel in ("v", "a"):
        compare_frames(f"ffmpeg copy {sel}", framemd5(str(out), sel), framemd5(src, sel))
    # And straight from the session URL (framemd5 reads the segments itself).
    compare_frames("ffmpeg framemd5 v", framemd5(long_session, "v"), framemd5(src, "v"))


def _source_track_bytes(recording: mkv.Mkv, track: int) -> bytes:
    buf = recording.path.read_bytes()
    return b"".join(frame for c in recording.clusters for b, frame in mkv.frames_of(buf, c) if b.track == track)


@pytest.mark.parametrize("track", [1, 2])
def test_gstreamer_reads_every_sample_of_a_300_fragment_session(long_recording, long_session, tmp_path, track):
    """souphttpsrc ! hlsdemux ! qtdemux ! filesink over one media playlist, unsynced (as fast as it goes): the
    samples qtdemux hands on, concatenated, are the ingested frames of that track, byte for byte."""
    need("gst-launch-1.0")
    url = media_playlist_urls(long_session)[track]
    out = tmp_path / f"track{track}.bin"
    cmd = ["gst-launch-1.0", "-q", "souphttpsrc", f"location={url}", "!", "hlsdemux", "!", "qtdemux", "!",
           "filesink", f"location={out}", "sync=false"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    got = out.read_bytes()
    want = _source_track_bytes(long_recording, track)
    assert len(got) == len(want) and hashlib.sha256(got).digest() == hashlib.sha256(want).digest(), \
        f"track {track}: {len(got)} bytes from GStreamer vs {len(want)} ingested"


def test_curl_revalidates_fragments_with_their_etag(long_session, tmp_path):
    """curl --etag-save / --etag-compare (a client none of us wrote): the second fetch of an init and a media
    fragment is a 304 with no body, the first a 200 with the whole resource."""
    import urllib.parse
    from test_players import fetch, playlist_uris
    media = media_playlist_urls(long_session)[1]
    uris = playlist_uris(fetch(media).decode(), media)
    init = next(u for kind, u in uris if kind == "map")
    segment = [u for kind, u in uris if kind == "segment"][7]
    for i, url in enumerate((init, segment)):
        etag, body = tmp_path / f"etag{i}", tmp_path / f"body{i}"
        codes = []
        for _ in range(2):
            p = subprocess.run(["curl", "-sS", "-o", str(body), "-w", "%{http_code} %{size_download}",
                                "--etag-compare", str(etag), "--etag-save", str(etag), url],
                               capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, p.stderr
            codes.append(p.stdout.split())
        assert codes[0][0] == "200" and int(codes[0][1]) > 0, (urllib.parse.urlsplit(url).path, codes)
        assert codes[1] == ["304", "0"], (urllib.parse.urlsplit(url).path, codes)
        assert etag.read_text().strip().startswith('"'), etag.read_text()
