#!/usr/bin/env python3
"""DASH serving against HLS serving (issue 11). Run through scripts/bench-dash.sh.

One openkvs (release, rate limits off), the 720p input ingested once, and two ON_DEMAND sessions over the
same range, one HLS and one DASH: the same fragments. Measured in the same run, interleaved (HLS, DASH,
HLS, DASH, ...) so machine drift hits both sides of every ratio, with wrk (-c 64) as scripts/bench_hls.py
drives it (its helpers are called, not copied):
  1. the manifest: the DASH MPD (getDASHManifest.mpd) against the HLS track-1 media playlist
     (getHLSMediaPlaylist.m3u8) of the same session size: requests/s, p50, p99;
  2. the media segments: DASH's getMP4MediaFragment.mp4 (named by $Time$ and the Period's first fragment,
     mapped back to the fragment by a catalog query) against HLS's (named by fragment number), cycling
     through every track-1 segment of the session: requests/s, p50, p99.
Ratios are DASH/HLS, per run and their median. Before timing, every URL is fetched once from both and
checked: both manifests list the same number of fragments, and each DASH segment has exactly the bytes
of the HLS segment of the same fragment; after each wrk run, error counts must be 0 and the mean
response size must match the warm-up's.
"""
import hashlib
import http.client
import json
import os
import statistics
import sys
import tempfile
import urllib.parse
import xml.etree.ElementTree as ET

from bench_hls import (
    Openkvs, STREAM, checked, finish, get, playlist_uris, put_media, warm_up, warn_if_noisy, wrk, wrk_arguments)

MPD = "{urn:mpeg:dash:schema:mpd:2011}"


def dash_segments(mpd_text):
    """The media URLs of the first Period's first AdaptationSet (track 1), $Time$ filled in from its S@t."""
    period = ET.fromstring(mpd_text).find(f"{MPD}Period")
    template = period.find(f"{MPD}AdaptationSet").find(f".//{MPD}SegmentTemplate")
    media = template.get("media")
    return [media.replace("$Time$", s.get("t")) for s in template.iter(f"{MPD}S")]


def main():
    args = wrk_arguments("where the data dir goes", 10).parse_args()

    work = tempfile.mkdtemp(prefix="openkvs-bench-dash-", dir=args.work_dir)
    print(f"input {args.input} ({os.path.getsize(args.input) / 1e6:.1f} MB); work dir {work}; "
          f"wrk -c {args.connections} -t {args.threads} -d {args.duration}s; {args.runs} interleaved runs each; "
          f"{os.cpu_count()} CPUs", flush=True)
    server = None
    try:
        server = Openkvs(args.bin, work)
        ingest, t0, t1 = server.ingest(args.bin, args.input)

        hls = urllib.parse.urlsplit(server.session("ON_DEMAND", t0, t1))
        hls_dir = hls.path.rsplit("/", 1)[0] + "/"
        hls_token = urllib.parse.parse_qs(hls.query)["SessionToken"][0]
        playlist = hls_dir + "getHLSMediaPlaylist.m3u8?" + urllib.parse.urlencode(
            {"SessionToken": hls_token, "TrackNumber": 1})
        dash = urllib.parse.urlsplit(server.session("ON_DEMAND", t0, t1, protocol="DASH"))
        dash_dir = dash.path.rsplit("/", 1)[0] + "/"
        manifest = dash.path + "?" + dash.query

        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        status, _, ctype, playlist_text = get(conn, playlist)
        assert status == 200 and ctype == "application/vnd.apple.mpegurl", (status, ctype, playlist_text[:300])
        status, _, ctype, mpd_text = get(conn, manifest)
        assert status == 200 and ctype == "application/dash+xml", (status, ctype, mpd_text[:300])
        conn.close()
        hls_paths = [hls_dir + u for u in playlist_uris(playlist_text.decode())
                     if u.startswith("getMP4MediaFragment.mp4?")]
        dash_paths = [dash_dir + u for u in dash_segments(mpd_text)]
        periods = len(ET.fromstring(mpd_text).findall(f"{MPD}Period"))
        if not (len(hls_paths) == len(dash_paths) == ingest["Persisted"]) or periods != 1:
            raise AssertionError(f"HLS lists {len(hls_paths)} fragments, DASH {len(dash_paths)} in {periods} "
                                 f"Periods; {ingest['Persisted']} ingested")
        print(f"one ON_DEMAND session each over {len(hls_paths)} fragments: HLS media playlist "
              f"{len(playlist_text)} bytes, DASH MPD {len(mpd_text)} bytes (one Period)", flush=True)

        def same(expected):
            def check(p, _ctype, body):
                if body != expected:
                    raise AssertionError(f"{p[:80]}: the manifest changed during the warm-up")
            return check

        warm_up(server.port, [playlist] * 5, same(playlist_text))
        warm_up(server.port, [manifest] * 5, same(mpd_text))
        seen = {}

        def hls_segment(p, ctype, body):
            if ctype != "video/mp4" or body[4:8] != b"moof":
                raise AssertionError(f"{p[:80]}: {ctype} {body[:8]!r}")
            seen[p] = hashlib.sha256(body).digest()

        hls_sizes = warm_up(server.port, hls_paths, hls_segment)
        dash_bodies = iter([seen[p] for p in hls_paths])

        def dash_segment(p, _ctype, body):
            if hashlib.sha256(body).digest() != next(dash_bodies):
                raise AssertionError(f"{p[:100]}: not the bytes of the HLS segment of the same fragment")

        warm_up(server.port, dash_paths, dash_segment)
        seen.clear()
        seg_mean = sum(hls_sizes) / len(hls_sizes)
        print(f"segments: {len(hls_sizes)} per protocol, mean {seg_mean / 1e3:.1f} kB; every DASH segment is "
              f"byte-identical to the HLS segment of its fragment", flush=True)

        lists = {}
        for name, paths in (("hls_playlist", [playlist]), ("dash_manifest", [manifest]),
                            ("hls_segments", hls_paths), ("dash_segments", dash_paths)):
            lists[name] = os.path.join(work, f"{name}.txt")
            with open(lists[name], "w") as f:
                f.write("\n".join(paths) + "\n")
        means = {"hls_playlist": len(playlist_text), "dash_manifest": len(mpd_text),
                 "hls_segments": seg_mean, "dash_segments": seg_mean}
        runs = {k: [] for k in lists}
        for n in range(args.runs):
            for kind in ("manifest", "segments"):
                pair = ("hls_playlist", "dash_manifest") if kind == "manifest" else ("hls_segments", "dash_segments")
                h, d = (checked(wrk(server.port, lists[k], args, server.pids()), k, means[k]) for k in pair)
                runs[pair[0]].append(h)
                runs[pair[1]].append(d)
                print(f"  {kind} run {n}: HLS {h['rps']:.0f} req/s p50 {h['latency_ms']['p50']:.2f} ms "
                      f"p99 {h['latency_ms']['p99']:.2f} ms; DASH {d['rps']:.0f} req/s p50 "
                      f"{d['latency_ms']['p50']:.2f} ms p99 {d['latency_ms']['p99']:.2f} ms; DASH/HLS req/s "
                      f"{d['rps'] / h['rps']:.2f}x; other processes' CPU {h['other_cpu_s']} s / "
                      f"{d['other_cpu_s']} s", flush=True)

        def summary(hls_key, dash_key):
            h, d = runs[hls_key], runs[dash_key]
            med = statistics.median
            out = {}
            for side, rows in (("hls", h), ("dash", d)):
                out[f"{side}_rps"] = round(med(r["rps"] for r in rows))
                out[f"{side}_p50_ms"] = round(med(r["latency_ms"]["p50"] for r in rows), 2)
                out[f"{side}_p99_ms"] = round(med(r["latency_ms"]["p99"] for r in rows), 2)
                out[f"{side}_server_cpu_s"] = med(r["server_cpu_s"] for r in rows)
            rps = [b["rps"] / a["rps"] for a, b in zip(h, d)]
            p50 = [b["latency_ms"]["p50"] / a["latency_ms"]["p50"] for a, b in zip(h, d)]
            p99 = [b["latency_ms"]["p99"] / a["latency_ms"]["p99"] for a, b in zip(h, d)]
            out["ratio_rps_per_run"] = [round(r, 3) for r in rps]
            out["ratio_rps_median"] = round(med(rps), 3)
            out["ratio_p50_median"] = round(med(p50), 3)
            out["ratio_p99_median"] = round(med(p99), 3)
            out["other_cpu_s_per_run"] = [[a["other_cpu_s"], b["other_cpu_s"]] for a, b in zip(h, d)]
            return out

        report = {
            "setup": {"cpus": os.cpu_count(), "connections": args.connections, "wrk_threads": args.threads,
                      "duration_s": args.duration, "runs": args.runs, "fragments": len(hls_paths),
                      "hls_playlist_bytes": len(playlist_text), "dash_mpd_bytes": len(mpd_text),
                      "mean_segment_bytes": round(seg_mean), "openkvs_hls_rate_limits": "all 0 (unlimited)"},
            "manifest": summary("hls_playlist", "dash_manifest"),
            "segments": summary("hls_segments", "dash_segments"),
        }
        print(json.dumps(report, indent=2))
        for kind, what in (("manifest", "ON_DEMAND manifest (DASH MPD vs HLS media playlist)"),
                           ("segments", "media segments (getMP4MediaFragment.mp4)")):
            r = report[kind]
            print(f"\n{what}: DASH {r['dash_rps']} req/s p50 {r['dash_p50_ms']} ms p99 {r['dash_p99_ms']} ms; "
                  f"HLS {r['hls_rps']} req/s p50 {r['hls_p50_ms']} ms p99 {r['hls_p99_ms']} ms; DASH/HLS: "
                  f"req/s {r['ratio_rps_median']:.2f}x, p50 {r['ratio_p50_median']:.2f}x, p99 {r['ratio_p99_median']:.2f}x")
        warn_if_noisy([r for rows in runs.values() for r in rows], args.duration)
    finally:
        finish(work, args.keep, server)


if __name__ == "__main__":
    sys.exit(main())
