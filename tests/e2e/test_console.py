"""The web console (/console/, issue 13) in a real browser: Debian's headless Chromium driven by playwright-core
(tests/e2e/players/console.mjs) through a user's visit of a server that checks signatures: a wrong secret is
refused, sign-in, a stream created with the form, a real-time producer seen live in the list and played live,
a time picked on the archive timeline and played from there, the clip of that pick downloaded (checked with
ffprobe), retention and tags changed, axe-core's accessibility check of every page, the pages at a phone's width,
the stream deleted. Screenshots are kept in the test's tmp dir (their paths are printed; OPENKVS_KEEP_TMP=1 or
pytest's --basetemp keeps them). Figures (timeline drawing, time to first frame) go to the terminal summary.

Tools: /usr/bin/chromium, node + `npm ci` in tests/e2e/players, ffprobe; scripts/test.sh installs them.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import time
import urllib.request
from datetime import datetime

import pytest

from conftest import ACCESS_KEY, SECRET_KEY, unique_name
from test_players import CHROMIUM, PLAYERS, looped_producer


def get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.headers, r.read()


def test_console_served_with_csp_and_versioned_assets(auth_server):
    """/console/ is the page (revalidated, strict CSP) and every script and sheet it names is under a versioned
    path, cached as immutable; no API call is needed to load it, even with credentials configured."""
    status, headers, body = get(f"{auth_server.endpoint}/console/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "no-cache"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp, csp
    assets = re.findall(r'(?:src|href)="(/console/a/[0-9a-f]{12}/[^"]+)"', body.decode())
    assert {a.rsplit("/", 1)[1] for a in assets} == {"favicon.svg", "style.css", "app.js"}, assets
    for a in assets:
        status, h, _ = get(auth_server.endpoint + a)
        assert status == 200 and "immutable" in h["Cache-Control"], (a, h)
    log = auth_server.log_path().read_text()
    assert f"console: {auth_server.endpoint}/console/" in log, log[-2000:]


def test_console_assets_gzipped_when_accepted(auth_server, report_figure):
    """The console's text assets go out gzip-compressed to a client that accepts it (as browsers do), the same bytes
    once decompressed, with `Vary: Accept-Encoding` and the CSP; a client that does not gets them as they are."""
    _, _, page = get(f"{auth_server.endpoint}/console/")
    base = re.search(r'src="(/console/a/[0-9a-f]{12}/)app\.js"', page.decode())[1]
    sizes = {}
    for name in ("vendor/hls.min.mjs", "app.js", "style.css"):
        url = auth_server.endpoint + base + name
        status, plain_h, plain = get(url)
        assert status == 200 and plain_h.get("Content-Encoding") is None, plain_h
        assert plain_h["Vary"].lower() == "accept-encoding", plain_h
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip, deflate, br"})
        with urllib.request.urlopen(request, timeout=10) as r:
            h, body = r.headers, r.read()
        assert h["Content-Encoding"] == "gzip" and h["Vary"].lower() == "accept-encoding", h
        assert "immutable" in h["Cache-Control"] and "default-src 'none'" in h["Content-Security-Policy"], h
        assert int(h["Content-Length"]) == len(body) < len(plain), (name, len(body), len(plain))
        assert gzip.decompress(body) == plain, name
        sizes[name] = {"bytes": len(plain), "gzip": len(body)}
    print("gzip:", json.dumps(sizes))
    assert sizes["vendor/hls.min.mjs"]["gzip"] * 2.5 < sizes["vendor/hls.min.mjs"]["bytes"], sizes
    report_figure({"console_gzip": sizes})


def drive_console(srv, tmp_path, stream: str, *args: str) -> dict:
    """Runs console.mjs against `srv`'s console with `args`; when it has created `stream`, feeds it in real time
    (h264_aac.mkv looped, 1-s fragments, up to 80 s). Returns its result; the producer is stopped."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} not installed (scripts/test.sh installs chromium)")
    if not (PLAYERS / "node_modules" / "axe-core").is_dir():
        pytest.fail("tests/e2e/players: run `npm ci` there (scripts/test.sh does)")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    proc = subprocess.Popen(
        ["node", str(PLAYERS / "console.mjs"), "--url", f"{srv.endpoint}/console/", "--stream", stream,
         "--out", str(shots), *args],
        cwd=PLAYERS, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    producer = None
    result = None
    try:
        for line in proc.stdout:
            msg = json.loads(line)
            if msg.get("step") == "created":
                # The browser made the stream: feed it in real time.
                _, producer, log = looped_producer(srv, tmp_path, seconds_x4=20, stream=stream)
                proc.stdin.write("producing\n")
                proc.stdin.flush()
            if "result" in msg:
                result = msg["result"]
        proc.wait(timeout=60)
    finally:
        if producer:
            producer.kill()
            producer.wait()
        if proc.poll() is None:
            proc.kill()
    assert result is not None, f"console.mjs rc={proc.returncode}\n{proc.stderr.read()[-3000:]}"
    for name, path in result["screenshots"].items():
        print(f"screenshot {name}: {path}")
    print("console:", "\n  ".join(result["console"][-20:]))
    assert "error" not in result, result["error"]
    assert not result["pageErrors"], result["pageErrors"]
    assert not result["cspViolations"], result["cspViolations"]
    return result


def test_console_user_visit(auth_server, tmp_path, report_figure):
    stream = unique_name("console")
    result = drive_console(auth_server, tmp_path, stream, "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY)

    # Sign-in: the wrong secret refused with the API's own error; the key kept in the tab only.
    assert "Sign-in refused" in result["wrongSecretStatus"] and "signature" in result["wrongSecretStatus"].lower()
    assert result["who"] == f"Signed in as {ACCESS_KEY}"
    assert result["storage"] == {"session": ["openkvs.console.credentials"], "local": [], "cookie": ""}
    assert result["sha256Agrees"] is True, result["sha256Agrees"]

    # Created with its tags; seen live in the list with the form's values.
    assert sorted(result["tagsShown"]) == ["camera = door", "site = e2e"]
    status, retention, media_type, last, ingest = result["listRow"][:5]
    assert (status, retention, media_type) == ("ACTIVE", "24 h", "video/h264,audio/aac"), result["listRow"]
    assert ingest.endswith("kB/s") or ingest.endswith("MB/s"), result["listRow"]

    # Live, then the archive from the picked time: both played (first frame shown, the playhead moved).
    assert result["live"]["mode"] == "LIVE" and result["liveCurrentTime"] > 0, result
    assert result["liveAudioDecodedBytes"], "the live player decoded no audio (the fixture has an AAC track)"
    archive = result["archive"]
    assert archive["mode"] == "ON_DEMAND" and archive["pickedAt"], archive
    assert not result["archivePlayingDate"]["paused"] and result["archivePlayingDate"]["currentTime"] > 0
    # The archive starts at the fragment containing or following the picked time (1-s fragments).
    assert archive["playingDate"] is not None, archive
    assert -1500 <= archive["playingDate"] - archive["pickedAt"] <= 3000, archive
    assert result["thumbnails"] >= 1 and all(label.startswith("Play from ") for label in result["thumbnailLabels"])
    draw = result["draw15min"]
    assert draw["fragments"] >= 10 and draw["drawn"] == draw["fragments"], draw

    # The clip of the pick (10 s, or up to a second ago): an MP4 ffprobe reads, with video and audio, as long as the
    # range give or take a fragment (1 s) at each end.
    clip = result["clipFile"]
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration,format_name:stream=codec_type",
                                       "-of", "json", clip], capture_output=True, text=True, check=True).stdout)
    kinds = sorted(s["codec_type"] for s in probe["streams"])
    duration = float(probe["format"]["duration"])
    print(f"clip {clip}: {kinds}, {duration:.2f} s, range {result['clipRange']}")
    assert "mp4" in probe["format"]["format_name"] and kinds == ["audio", "video"], probe
    a, b = (datetime.fromisoformat(t).timestamp() for t in result["clipRange"])
    assert 3 <= b - a <= 10, result["clipRange"]
    assert b - a - 2 <= duration <= b - a + 2, (duration, result["clipRange"])

    # Settings.
    assert result["tagsAfter"] == ["site = e2e"], result["tagsAfter"]

    # Accessibility: no axe-core violation (WCAG 2.1 A/AA and best practices) on any page.
    for page, r in result["axe"].items():
        print(f"axe {page}: {r['passes']} rules passed, violations {r['violations']}")
    assert set(result["axe"]) == {"sign-in", "streams", "stream"}
    assert all(not r["violations"] for r in result["axe"].values()), result["axe"]

    # A phone's width: nothing wider than the screen.
    for page in ("stream", "streams"):
        w = result["phone"][page]
        assert w["scrollWidth"] <= w["innerWidth"] == 390, (page, w)
    assert result["phone"]["badgeRight"] is not None and result["phone"]["badgeRight"] <= 390, result["phone"]

    # Deleted: gone from the list and from the API.
    assert result["rowsAfterDelete"] == 0
    kv = auth_server.kv()
    with pytest.raises(kv.exceptions.ResourceNotFoundException):
        kv.describe_stream(StreamName=stream)

    # 100,000 synthetic fragments with 19 ten-minute gaps, drawn whole: every gap shows.
    syn = result["synthetic"]
    assert syn["fragments"] == 100000 and syn["whole"]["fragments"] == 100000, syn
    assert syn["whole"]["gaps"] == 19 and syn["whole"]["bars"] == 20, syn
    figures = {
        "timeline_real": {k: draw[k] for k in ("fragments", "bars", "gaps")} | {"draw_ms": round(draw["drawMs"], 2),
                                                                              "list_ms": round(draw["listMs"])},
        "timeline_synthetic_100k": {"fragments": syn["fragments"], "whole_draw_ms": round(syn["whole"]["ms"], 2),
                                    "bars": syn["whole"]["bars"], "gaps": syn["whole"]["gaps"],
                                    "zoom_draw_ms_p50": round(syn["p50"], 2), "zoom_draw_ms_max": round(syn["max"], 2)},
        "first_frame_ms": {"live": round(result["live"]["ms"]), "archive_after_click": round(archive["ms"])},
    }
    print("figures:", json.dumps(figures))
    report_figure(figures)


def stream_series(endpoint: str, stream: str) -> dict[str, float]:
    """The openkvs_stream_* samples of `stream` in /metrics: name (with its `le` for buckets) → value."""
    _, _, body = get(f"{endpoint}/metrics")
    out = {}
    for line in body.decode().splitlines():
        m = re.match(r'^(openkvs_stream_\w+)\{stream="([^"]*)"(?:,le="([^"]+)")?\} (\S+)$', line)
        if m and m[2] == stream:
            out[m[1] + (f"[{m[3]}]" if m[3] else "")] = float(m[4])
    return out


def test_console_without_credentials(server, tmp_path, report_figure):
    """A server started without --credentials (loopback): the console opens on the streams with no sign-in; a
    stream created with the form is listed live with its ingest rate (from /metrics) while a real-time producer
    feeds it; it plays live; its page shows the stream's /metrics figures (the player counted as a viewer, the
    PERSISTED latency). With 12 idle streams beside it, the list's ListFragments calls stay bounded per refresh.
    /metrics has the stream's series, and loses them when the stream is deleted."""
    started = time.monotonic()
    stream = unique_name("console-open")
    # Idle streams beside it: the list must not call ListFragments for each of them on every refresh.
    idle = [server.create_stream(unique_name("console-idle"))[1] for _ in range(12)]
    try:
        result = drive_console(server, tmp_path, stream, "--open", "1")
    finally:
        for arn in idle:
            server.kv().delete_stream(StreamARN=arn)

    assert result["signInVisible"] is False and result["signOutVisible"] is False, result
    assert result["who"] == "Open server: no credentials configured (loopback)", result["who"]
    status, retention, media_type, last, ingest = result["listRow"][:5]
    assert (status, retention, media_type) == ("ACTIVE", "24 h", "video/h264,audio/aac"), result["listRow"]
    assert ingest.endswith("kB/s") or ingest.endswith("MB/s"), result["listRow"]
    # 13 streams, 12 of them idle: at most 2 looked up with ListFragments (1 or 2 calls each) per refresh; the live
    # one from /metrics (one read per refresh). A refresh begun before the 12 s may add its calls: one more allowed.
    # (Calling it for every stream would be 13 to 26 calls a refresh.)
    calls = result["listCalls"]
    print("list calls in 12 s:", calls)
    assert calls["metrics"] >= 2 and abs(calls["listStreams"] - calls["metrics"]) <= 1, calls
    assert calls["listFragments"] <= 4 * (calls["metrics"] + 1), calls
    assert result["live"]["mode"] == "LIVE" and result["liveCurrentTime"] > 0, result
    facts = result["facts"]
    print("stream facts:", json.dumps(facts))
    assert re.match(r"[1-9]\d* \(HLS/DASH sessions in the last 30 s\)$", facts["Viewers"]), facts
    assert re.match(r"mean \d+\.\d ms, 95 % (within [\d.]+ ms|over 5 s) \(\d+ fragments\)$",
                    facts["PERSISTED latency"]), facts
    assert facts["Ingest"].endswith("B/s"), facts

    # /metrics itself: the producer's fragments, each with its PERSISTED latency; the player still a viewer.
    series = stream_series(server.endpoint, stream)
    fragments = series["openkvs_stream_fragments_ingested_total"]
    assert fragments >= 3, series
    assert series["openkvs_stream_persisted_latency_seconds_count"] == fragments, series
    assert series["openkvs_stream_persisted_latency_seconds_bucket[+Inf]"] == fragments, series
    assert series["openkvs_stream_ingested_bytes_total"] > 0, series
    assert series["openkvs_stream_viewers"] >= 1, series
    assert series["openkvs_stream_media_requests_total"] >= 3, series
    assert abs(series["openkvs_stream_last_persisted_timestamp_seconds"] - time.time()) < 60, series
    mean_ms = 1000 * series["openkvs_stream_persisted_latency_seconds_sum"] / fragments

    # Deleted: its series are gone from /metrics.
    server.kv().delete_stream(StreamARN=server.kv().describe_stream(StreamName=stream)["StreamInfo"]["StreamARN"])
    assert stream_series(server.endpoint, stream) == {}
    elapsed = time.monotonic() - started
    print(f"open console visit: {elapsed:.1f} s; {fragments:.0f} fragments, mean PERSISTED latency {mean_ms:.1f} ms")
    report_figure({"open_visit_s": round(elapsed, 1), "first_frame_live_ms": round(result["live"]["ms"]),
                   "list_calls_12s": calls,
                   "fragments": int(fragments), "persisted_latency_mean_ms": round(mean_ms, 1)})
    assert elapsed < 60, elapsed
