"""The committed fixtures are what tests/fixtures/README.md says, seen by the independent EBML walker
and (when installed) by mkvinfo. Needs no server."""

from __future__ import annotations

import shutil
import subprocess

import pytest

import mkv
from conftest import FIXTURES

EXPECTED = {  # name: (segments, clusters, {track: blocks})
    "h264_aac.mkv": (1, 4, {1: 120, 2: 188}),
    "h264_aac_bframes.mkv": (1, 4, {1: 120, 2: 188}),
    "h265.mkv": (1, 4, {1: 120}),
    "aac_only.mkv": (1, 4, {1: 188}),
    "h264_res_change.mkv": (2, 4, {1: 120, 2: 188}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_shape(name):
    m = mkv.parse_file(FIXTURES / name)
    segments, clusters, frames = EXPECTED[name]
    assert len(m.segments) == segments
    assert len(m.clusters) == clusters and all(c.complete for c in m.clusters)
    assert m.frame_counts() == frames
    tcs = [c.timecode for c in m.clusters]
    assert tcs == sorted(set(tcs)), "cluster timecodes must strictly increase"
    for c in m.clusters:
        video = m.video_track(c.segment)
        if video:
            first = next(b for b in c.blocks if b.track == video)
            assert first.keyframe, f"cluster at {c.offset} does not start with a video key frame"
    assert 10_000 < (FIXTURES / name).stat().st_size < 1_000_000


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n != "h264_res_change.mkv"))
def test_oracle_agrees_with_mkvinfo(name):
    assert shutil.which("mkvinfo"), "mkvinfo is needed (scripts/test.sh installs mkvtoolnix)"
    out = subprocess.run(["mkvinfo", "-v", "-v", str(FIXTURES / name)], capture_output=True, text=True).stdout
    assert out.count("+ Cluster at") == len(mkv.parse_file(FIXTURES / name).clusters)
    assert out.count("Simple block:") == sum(mkv.parse_file(FIXTURES / name).frame_counts().values())


def test_writer_round_trip():
    src = mkv.Source(FIXTURES / "h264_aac.mkv")
    body = src.header + b"".join(src.emit_cluster(i) for i in range(len(src.clusters)))
    m = mkv.parse(body)
    assert [c.timecode for c in m.clusters] == [c.timecode for c in src.clusters]
    assert m.frame_counts() == src.mkv.frame_counts()
    cut = mkv.parse(body[:len(body) - 100])
    assert not cut.clusters[-1].complete and all(c.complete for c in cut.clusters[:-1])
    looped = mkv.parse(src.header + b"".join(src.looped(3)))
    tcs = [c.timecode for c in looped.clusters]
    assert len(tcs) == 12 and tcs == sorted(set(tcs))
