#!/usr/bin/env python3
"""HLS serving benchmark (issue 3). Run through scripts/bench-hls.sh.

Measures, interleaved in one run (openkvs, nginx, openkvs, nginx, ...) so machine drift hits
both sides of every ratio:
  1. GetMP4MediaFragment: wrk (-c 64) cycling through the track-1 fragment URIs of an ON_DEMAND
     session over the whole ingested input, against nginx serving the same video packaged by
     `ffmpeg -f hls -hls_segment_type fmp4 -hls_time 1` as files on the same disk: requests/s
     and GB/s (wrk's bytes, headers included, per second);
  2. the track-1 media playlist of a LIVE session, against nginx serving a static copy of the
     same bytes: requests/s.
The server runs with `[hls_rate_limits]` all 0 (unlimited): AWS's per-session quotas (20
fragments/s, 5 playlists/s) would otherwise be what is measured. Before timing, a warm-up pass
fetches every URL once from both servers and checks the status, Content-Length and body (an
openkvs fragment is a moof + mdat whose boxes span the body exactly; the LIVE playlist equals
the static copy); after each wrk run, the non-2xx/3xx and socket error counts must be 0 and the
mean response size must match the warm-up's.
"""
import argparse
import datetime
import http.client
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

import boto3

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")
STREAM = "bench-hls"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start")


def cpu_seconds(pids):
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    return total


class Openkvs:
    def __init__(self, binary, work):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        config = os.path.join(work, "openkvs.toml")
        with open(config, "w") as f:
            f.write("[hls_rate_limits]  # 0 = unlimited: the benchmark measures the server, not the quotas\n"
                    "master_playlist_tps = 0\nmedia_playlist_tps = 0\ninit_fragment_tps = 0\n"
                    "media_fragment_tps = 0\nsession_url_tps_per_stream = 0\n")
        self.data = os.path.join(work, "openkvs-data")
        self.log = open(os.path.join(work, "openkvs.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", config, "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, "openkvs serve")
        creds = dict(region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench")
        self.kv = boto3.client("kinesisvideo", endpoint_url=self.endpoint, **creds)
        self.creds = creds

    def pids(self):
        return [self.proc.pid]

    def session(self, mode, start=None, end=None, protocol="HLS"):
        """A Get{HLS,DASH}StreamingSessionURL (`protocol`) of the stream: the URL."""
        ep = self.kv.get_data_endpoint(StreamName=STREAM, APIName=f"GET_{protocol}_STREAMING_SESSION_URL")["DataEndpoint"]
        am = boto3.client("kinesis-video-archived-media", endpoint_url=ep, **self.creds)
        args = dict(StreamName=STREAM, PlaybackMode=mode, Expires=43200)
        if mode == "ON_DEMAND":
            args[f"{protocol}FragmentSelector"] = {"FragmentSelectorType": "SERVER_TIMESTAMP",
                                                   "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}}
        call = {"HLS": am.get_hls_streaming_session_url, "DASH": am.get_dash_streaming_session_url}[protocol]
        return call(**args)[f"{protocol}StreamingSessionURL"]

    def ingest(self, binary, path):
        """Creates the stream and puts `path` into it: (put-media's summary, a range of server times
        holding every fragment)."""
        self.kv.create_stream(StreamName=STREAM, DataRetentionInHours=24)
        t0 = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=2)
        summary = put_media(binary, self.endpoint, path)
        # botocore sends whole seconds (it truncates): the end must be a second past the last fragment.
        time.sleep(1.1)
        return summary, t0, datetime.datetime.now(datetime.timezone.utc)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


class Nginx:
    def __init__(self, work, root, workers):
        self.port = free_port()
        self.dir = os.path.join(work, "nginx")
        os.makedirs(self.dir)
        with open(os.path.join(HERE, "bench-hls", "nginx.conf.in")) as f:
            conf = f.read()
        for k, v in {"WORKERS": workers, "DIR": self.dir, "PORT": self.port, "ROOT": root}.items():
            conf = conf.replace(f"@{k}@", str(v))
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(["nginx", "-p", self.dir, "-c", path, "-e", os.path.join(self.dir, "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "nginx")

    def pids(self):
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return [self.proc.pid] + [int(p) for p in f.read().split()]

    def stop(self):
        self.proc.terminate()  # SIGTERM: fast shutdown
        self.proc.wait(timeout=30)


def put_media(binary, endpoint, path, stream=STREAM):
    out = subprocess.run([binary, "put-media", "--fast", "--endpoint-url", endpoint, "--stream-name", stream, path],
                         check=True, capture_output=True, text=True).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    if summary.get("Errors"):
        raise RuntimeError(f"ERROR acks: {summary['Errors'][:3]}")
    return summary


def get(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    return r.status, r.getheader("Content-Length"), r.getheader("Content-Type"), body


def playlist_uris(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def check_boxes(body, first):
    """The top-level ISO-BMFF boxes, which must start with one of `first` and span the body exactly."""
    off, names = 0, []
    while off < len(body):
        size = int.from_bytes(body[off:off + 4], "big")
        name = body[off + 4:off + 8].decode("latin-1")
        if size == 1:
            size = int.from_bytes(body[off + 8:off + 16], "big")
        if size < 8 or off + size > len(body):
            raise AssertionError(f"box {name!r} at {off} of size {size} overruns a {len(body)}-byte body")
        names.append(name)
        off += size
    if not names or names[0] not in first or "mdat" not in names:
        raise AssertionError(f"boxes {names[:6]}: expected {first} ... mdat")


def warm_up(port, paths, check):
    """Fetch every path once over one keep-alive connection; every response must be a complete 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    sizes = []
    for p in paths:
        status, length, ctype, body = get(conn, p)
        if status != 200:
            raise AssertionError(f"GET {p[:100]}: {status} {body[:300]!r}")
        if length is None or int(length) != len(body):
            raise AssertionError(f"GET {p[:100]}: Content-Length {length}, body {len(body)} bytes")
        check(p, ctype, body)
        sizes.append(len(body))
    conn.close()
    return sizes


def busy_seconds():
    """CPU seconds the whole machine spent outside idle and iowait (from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK


def wrk(port, paths_file, args, pids):
    cpu0, busy0 = cpu_seconds(pids), busy_seconds()
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["wrk", "-c", str(args.connections), "-t", str(args.threads), "-d", f"{args.duration}s",
                          "--latency", "-s", os.path.join(HERE, "bench-hls", "cycle.lua"),
                          f"http://127.0.0.1:{port}", "--", paths_file, str(args.threads)],
                         check=True, capture_output=True, text=True).stdout
    cpu = cpu_seconds(pids) - cpu0
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = child1.ru_utime + child1.ru_stime - child0.ru_utime - child0.ru_stime
    # Anything else that ran meanwhile (a build, another benchmark) skews the run: say so.
    other = busy_seconds() - busy0 - cpu - wrk_cpu
    line = next(line for line in out.splitlines() if line.startswith("WRK_JSON "))
    r = json.loads(line[len("WRK_JSON "):])
    m = re.search(r"Transfer/sec:\s*(\S+)", out)
    seconds = r["duration_us"] / 1e6
    return {"rps": r["requests"] / seconds, "gbps": r["bytes"] / seconds / 1e9, "requests": r["requests"],
            "bytes_per_response": r["bytes"] / max(1, r["requests"]), "errors": r["errors"],
            "non_2xx_3xx": r["errors"]["status"], "latency_ms": {k: v / 1e3 for k, v in r["latency_us"].items()},
            "server_cpu_s": round(cpu, 2), "wrk_cpu_s": round(wrk_cpu, 2), "other_cpu_s": round(max(0.0, other), 2),
            "wrk_transfer_per_sec": m.group(1) if m else None}


def checked(run, what, body_mean, header_allow=600):
    """A run with any error, or whose mean response is not the warm-up's mean body size (plus
    headers), did not measure what it claims to."""
    bad = {k: v for k, v in run["errors"].items() if v}
    if bad:
        raise AssertionError(f"{what}: wrk errors {bad}")
    extra = run["bytes_per_response"] - body_mean
    if not (-0.02 * body_mean <= extra <= 0.02 * body_mean + header_allow):
        raise AssertionError(f"{what}: {run['bytes_per_response']:.0f} bytes/response, expected ~{body_mean:.0f} + headers")
    return run


def warn_if_noisy(runs, duration):
    """Says so when other processes used over 5 % of the machine during any of the wrk `runs`."""
    budget = 0.05 * duration * (os.cpu_count() or 1)
    noisy = [r["other_cpu_s"] for r in runs if r["other_cpu_s"] > budget]
    if noisy:
        print(f"WARNING: other processes used {max(noisy):.1f} CPU s during a {duration} s run "
              f"({len(noisy)} runs over 5% of the machine): the ratios are noisy; rerun on a quiet machine")


def finish(work, keep, *servers):
    """Stops the servers started (None: not started) and removes the work dir unless `keep`."""
    for s in servers:
        if s is not None:
            s.stop()
    if keep:
        print(f"work dir kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def perf_profile(pid, seconds, out_dir, tag, during):
    """`perf record -g` on the server while `during()` runs; the report's top lines (not timed)."""
    data = os.path.join(out_dir, f"perf-{tag}.data")
    rec = subprocess.Popen(["perf", "record", "-g", "-o", data, "-p", str(pid), "--", "sleep", str(seconds)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    during()
    rec.wait()
    rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "--sort", "dso,symbol",
                          "--percent-limit", "1", "-g", "none"], capture_output=True, text=True).stdout
    lines = (re.sub(r"\s+", " ", re.sub(r"(\s+-)+\s*$", "", line)).strip() for line in rep.splitlines()
             if line.strip() and not line.startswith("#"))
    return [line for line in lines if line][:25]


def wrk_arguments(work_dir_help, duration):
    """The options of a wrk benchmark of openkvs over the bench input (this one and bench_dash.py)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--work-dir", default="/var/tmp", help=work_dir_help)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=duration)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    return ap


def main():
    ap = wrk_arguments("where the data dir and the ffmpeg segments go (same disk)", 15)
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="nginx worker_processes")
    ap.add_argument("--perf", action="store_true", help="after the timed runs, profile the server with perf record -g")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="openkvs-bench-hls-", dir=args.work_dir)
    os.chmod(work, 0o755)  # nginx workers run as nobody
    print(f"input {args.input} ({os.path.getsize(args.input) / 1e6:.1f} MB); work dir {work}; "
          f"wrk -c {args.connections} -t {args.threads} -d {args.duration}s; {args.runs} interleaved runs each; "
          f"{os.cpu_count()} CPUs, nginx {args.workers} workers", flush=True)
    server = nginx = None
    try:
        # The baseline: the same video as fMP4 segment files on the same disk.
        seg_dir = os.path.join(work, "www", "vod")
        os.makedirs(seg_dir)
        os.chmod(os.path.join(work, "www"), 0o755)
        os.chmod(seg_dir, 0o755)
        subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", args.input, "-map", "0:v", "-c", "copy",
                        "-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", "1", "-hls_playlist_type", "vod",
                        "-hls_segment_filename", os.path.join(seg_dir, "seg%04d.m4s"),
                        os.path.join(seg_dir, "out.m3u8")], check=True)
        with open(os.path.join(seg_dir, "out.m3u8")) as f:
            nginx_paths = ["/vod/" + u for u in playlist_uris(f.read())]

        server = Openkvs(args.bin, work)
        ingest, t0, t1 = server.ingest(args.bin, args.input)
        url = server.session("ON_DEMAND", t0, t1)
        base = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
        status, _, _, master = get(conn, base.path + "?" + base.query)
        assert status == 200, (status, master[:300])
        token = urllib.parse.parse_qs(base.query)["SessionToken"][0]
        hls = base.path.rsplit("/", 1)[0] + "/"
        media_path = hls + "getHLSMediaPlaylist.m3u8?" + urllib.parse.urlencode({"SessionToken": token, "TrackNumber": 1})
        status, _, _, media = get(conn, media_path)
        assert status == 200, (status, media[:300])
        conn.close()
        openkvs_paths = [hls + u for u in playlist_uris(media.decode()) if u.startswith("getMP4MediaFragment.mp4?")]
        if len(openkvs_paths) != ingest["Persisted"]:
            raise AssertionError(f"ON_DEMAND playlist lists {len(openkvs_paths)} fragments, {ingest['Persisted']} ingested")

        def check_fragment(p, ctype, body):
            if ctype != "video/mp4":
                raise AssertionError(f"{p[:80]}: Content-Type {ctype}")
            check_boxes(body, ("moof",))

        nginx = Nginx(work, os.path.join(work, "www"), args.workers)
        openkvs_sizes = warm_up(server.port, openkvs_paths, check_fragment)
        nginx_sizes = warm_up(nginx.port, nginx_paths, lambda p, c, b: check_boxes(b, ("styp", "moof")))
        for p, n in zip(nginx_paths, nginx_sizes):
            if os.path.getsize(os.path.join(work, "www", p.lstrip("/"))) != n:
                raise AssertionError(f"{p}: nginx returned {n} bytes, the file has a different size")
        o_total, n_total = sum(openkvs_sizes), sum(nginx_sizes)
        print(f"fragments: openkvs {len(openkvs_sizes)} (ON_DEMAND track 1), {o_total / 1e6:.1f} MB, "
              f"mean {o_total / len(openkvs_sizes) / 1e3:.1f} kB; nginx {len(nginx_sizes)} ffmpeg segments, "
              f"{n_total / 1e6:.1f} MB, mean {n_total / len(nginx_sizes) / 1e3:.1f} kB "
              f"(openkvs/ffmpeg bytes {o_total / n_total:.3f}); all 200 with the expected sizes", flush=True)
        o_list, n_list = os.path.join(work, "openkvs-fragments.txt"), os.path.join(work, "nginx-segments.txt")
        for path, paths in ((o_list, openkvs_paths), (n_list, nginx_paths)):
            with open(path, "w") as f:
                f.write("\n".join(paths) + "\n")
        o_mean, n_mean = o_total / len(openkvs_sizes), n_total / len(nginx_sizes)

        frag = {"openkvs": [], "nginx": []}
        for n in range(args.runs):
            o = checked(wrk(server.port, o_list, args, server.pids()), "openkvs fragments", o_mean)
            g = checked(wrk(nginx.port, n_list, args, nginx.pids()), "nginx segments", n_mean)
            frag["openkvs"].append(o)
            frag["nginx"].append(g)
            print(f"  fragments run {n}: openkvs {o['rps']:.0f} req/s {o['gbps']:.2f} GB/s "
                  f"(p99 {o['latency_ms']['p99']:.1f} ms, server CPU {o['server_cpu_s']} s); "
                  f"nginx {g['rps']:.0f} req/s {g['gbps']:.2f} GB/s (p99 {g['latency_ms']['p99']:.1f} ms, "
                  f"CPU {g['server_cpu_s']} s); ratio {o['gbps'] / g['gbps']:.2f}x GB/s, "
                  f"{o['rps'] / g['rps']:.2f}x req/s; other processes' CPU {o['other_cpu_s']} s / {g['other_cpu_s']} s",
                  flush=True)

        # LIVE: ingest again so the stream has a fragment from the last seconds, then the session.
        put_media(args.bin, server.endpoint, args.input)
        live_url = urllib.parse.urlsplit(server.session("LIVE"))
        live_token = urllib.parse.parse_qs(live_url.query)["SessionToken"][0]
        live_path = hls + "getHLSMediaPlaylist.m3u8?" + urllib.parse.urlencode({"SessionToken": live_token, "TrackNumber": 1})
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        status, _, ctype, live_text = get(conn, live_path)
        conn.close()
        assert status == 200 and b"#EXT-X-ENDLIST" not in live_text and b"getMP4MediaFragment" in live_text, \
            (status, live_text[:500])
        with open(os.path.join(work, "www", "live.m3u8"), "wb") as f:
            f.write(live_text)

        def same_playlist(p, c, body):
            if body != live_text:
                raise AssertionError(f"{p[:80]}: the playlist changed during the warm-up")

        warm_up(server.port, [live_path] * 20, same_playlist)
        warm_up(nginx.port, ["/live.m3u8"] * 20, same_playlist)
        print(f"LIVE playlist: {len(live_text)} bytes, {len(playlist_uris(live_text.decode()))} segments "
              f"({ctype}); nginx serves the same bytes as /live.m3u8", flush=True)
        ol_list, nl_list = os.path.join(work, "openkvs-live.txt"), os.path.join(work, "nginx-live.txt")
        with open(ol_list, "w") as f:
            f.write(live_path + "\n")
        with open(nl_list, "w") as f:
            f.write("/live.m3u8\n")
        pl = {"openkvs": [], "nginx": []}
        for n in range(args.runs):
            o = checked(wrk(server.port, ol_list, args, server.pids()), "openkvs LIVE playlist", len(live_text))
            g = checked(wrk(nginx.port, nl_list, args, nginx.pids()), "nginx live.m3u8", len(live_text))
            pl["openkvs"].append(o)
            pl["nginx"].append(g)
            print(f"  playlist run {n}: openkvs {o['rps']:.0f} req/s (p99 {o['latency_ms']['p99']:.2f} ms, "
                  f"server CPU {o['server_cpu_s']} s); nginx {g['rps']:.0f} req/s (p99 {g['latency_ms']['p99']:.2f} ms, "
                  f"CPU {g['server_cpu_s']} s); ratio {o['rps'] / g['rps']:.2f}x; other processes' CPU "
                  f"{o['other_cpu_s']} s / {g['other_cpu_s']} s", flush=True)

        profiles = None
        if args.perf:
            secs = max(5, args.duration - 3)
            profiles = {
                "fragments": perf_profile(server.proc.pid, secs, work, "fragments",
                                          lambda: wrk(server.port, o_list, args, server.pids())),
                "live_playlist": perf_profile(server.proc.pid, secs, work, "playlist",
                                              lambda: wrk(server.port, ol_list, args, server.pids())),
            }

        def med(rows, key):
            return statistics.median(r[key] for r in rows)

        def ratios(d, key):
            return [o[key] / g[key] for o, g in zip(d["openkvs"], d["nginx"])]

        report = {
            "setup": {"cpus": os.cpu_count(), "nginx_workers": args.workers, "connections": args.connections,
                      "wrk_threads": args.threads, "duration_s": args.duration, "runs": args.runs,
                      "openkvs_hls_rate_limits": "all 0 (unlimited)"},
            "media_fragments": {
                "openkvs_fragments": len(openkvs_sizes), "openkvs_total_bytes": o_total,
                "nginx_segments": len(nginx_sizes), "nginx_total_bytes": n_total,
                "openkvs_rps": round(med(frag["openkvs"], "rps")), "nginx_rps": round(med(frag["nginx"], "rps")),
                "openkvs_gbps": round(med(frag["openkvs"], "gbps"), 3), "nginx_gbps": round(med(frag["nginx"], "gbps"), 3),
                "ratio_gbps_per_run": [round(r, 3) for r in ratios(frag, "gbps")],
                "ratio_rps_per_run": [round(r, 3) for r in ratios(frag, "rps")],
                "ratio_gbps_median": round(statistics.median(ratios(frag, "gbps")), 3),
                "ratio_rps_median": round(statistics.median(ratios(frag, "rps")), 3),
                "goal": ">= 1.0",
                "openkvs_p99_ms": med([r["latency_ms"] for r in frag["openkvs"]], "p99"),
                "nginx_p99_ms": med([r["latency_ms"] for r in frag["nginx"]], "p99"),
                "openkvs_server_cpu_s": med(frag["openkvs"], "server_cpu_s"),
                "nginx_server_cpu_s": med(frag["nginx"], "server_cpu_s"),
                "other_cpu_s_per_run": [[o["other_cpu_s"], g["other_cpu_s"]] for o, g in zip(frag["openkvs"], frag["nginx"])],
                "non_2xx_3xx": {"openkvs": sum(r["non_2xx_3xx"] for r in frag["openkvs"]),
                                "nginx": sum(r["non_2xx_3xx"] for r in frag["nginx"])},
            },
            "live_media_playlist": {
                "playlist_bytes": len(live_text),
                "openkvs_rps": round(med(pl["openkvs"], "rps")), "nginx_rps": round(med(pl["nginx"], "rps")),
                "ratio_rps_per_run": [round(r, 3) for r in ratios(pl, "rps")],
                "ratio_rps_median": round(statistics.median(ratios(pl, "rps")), 3),
                "goal": ">= 0.8",
                "openkvs_p99_ms": med([r["latency_ms"] for r in pl["openkvs"]], "p99"),
                "nginx_p99_ms": med([r["latency_ms"] for r in pl["nginx"]], "p99"),
                "openkvs_server_cpu_s": med(pl["openkvs"], "server_cpu_s"),
                "nginx_server_cpu_s": med(pl["nginx"], "server_cpu_s"),
                "other_cpu_s_per_run": [[o["other_cpu_s"], g["other_cpu_s"]] for o, g in zip(pl["openkvs"], pl["nginx"])],
                "non_2xx_3xx": {"openkvs": sum(r["non_2xx_3xx"] for r in pl["openkvs"]),
                                "nginx": sum(r["non_2xx_3xx"] for r in pl["nginx"])},
            },
        }
        if profiles:
            report["perf_top"] = profiles
        print(json.dumps(report, indent=2))
        f, p = report["media_fragments"], report["live_media_playlist"]
        print(f"\nGetMP4MediaFragment: openkvs {f['openkvs_gbps']:.2f} GB/s {f['openkvs_rps']} req/s vs nginx "
              f"{f['nginx_gbps']:.2f} GB/s {f['nginx_rps']} req/s: {f['ratio_gbps_median']:.2f}x GB/s, "
              f"{f['ratio_rps_median']:.2f}x req/s (goal >= 1.0x) {'PASS' if f['ratio_gbps_median'] >= 1.0 else 'FAIL'}")
        print(f"LIVE media playlist: openkvs {p['openkvs_rps']} req/s vs nginx {p['nginx_rps']} req/s: "
              f"{p['ratio_rps_median']:.2f}x (goal >= 0.8x) {'PASS' if p['ratio_rps_median'] >= 0.8 else 'FAIL'}")
        warn_if_noisy([r for d in (frag, pl) for side in d.values() for r in side], args.duration)
    finally:
        finish(work, args.keep, nginx, server)


if __name__ == "__main__":
    sys.exit(main())
