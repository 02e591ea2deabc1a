#!/usr/bin/env python3
"""PutMedia ingest benchmark (issue 2). Run through scripts/bench-ingest.sh.

Measures, interleaved in one run so machine drift hits both sides of every ratio:
  1. durable ingest, data dir on disk: MB/s until the last PERSISTED ack of
     `openkvs put-media --fast`, against `dd conv=fdatasync` of the same size in the same
     directory (the disk's sequential write bandwidth: the physical limit);
  2. data dir on tmpfs: the same ingest against `ffmpeg -c copy -f hls -hls_segment_type fmp4`
     writing to the same tmpfs (what a user scripts instead);
plus last-byte-of-fragment to PERSISTED latency p50/p99 (reported by put-media) and the
server's CPU seconds per GB ingested (utime+stime from /proc).
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


class Server:
    def __init__(self, binary, data_dir):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", data_dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("server did not start")
        self.kv = boto3.client("kinesisvideo", endpoint_url=self.endpoint, region_name="us-east-1",
                               aws_access_key_id="bench", aws_secret_access_key="bench")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def put_media(binary, endpoint, stream, path, fast=True):
    out = subprocess.run([binary, "put-media"] + (["--fast"] if fast else []) + ["--endpoint-url", endpoint,
                          "--stream-name", stream, path],
                         check=True, capture_output=True, text=True).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    if summary.get("Errors"):
        raise RuntimeError(f"ERROR acks: {summary['Errors'][:3]}")
    return summary


def ingest_run(binary, server, path, size, n):
    stream = f"bench{n}"
    server.kv.create_stream(StreamName=stream, DataRetentionInHours=24)
    cpu0 = cpu_seconds(server.proc.pid)
    t0 = time.perf_counter()
    summary = put_media(binary, server.endpoint, stream, path)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(server.proc.pid) - cpu0
    return {"mbps": size / wall / 1e6, "cpu_s_per_gb": cpu / (size / 1e9),
            "p50": summary["PersistLatencyMs"]["p50"], "p99": summary["PersistLatencyMs"]["p99"],
            "persisted": summary["Persisted"]}


def excerpt(path, directory, clusters):
    """The input's header and first `clusters` clusters: a valid MKV for a paced run."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
    import mkv  # the independent EBML walker of the e2e tests
    with open(path, "rb") as f:
        head = f.read(64 << 20)
    parsed = mkv.parse(head)
    end = parsed.clusters[clusters].offset
    out = os.path.join(directory, f"openkvs-bench-excerpt-{clusters}.mkv")
    with open(out, "wb") as f:
        f.write(head[:end])
    return out


def paced_latency(binary, server, path, n):
    """Real-time ingest, as a camera sends: last byte of a fragment to PERSISTED, no backlog."""
    stream = f"paced{n}"
    server.kv.create_stream(StreamName=stream, DataRetentionInHours=24)
    summary = put_media(binary, server.endpoint, stream, path, fast=False)
    return summary["PersistLatencyMs"]


def dd_run(directory, size):
    target = os.path.join(directory, "dd.bin")
    blocks = max(1, size // (4 << 20))
    t0 = time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=4M", f"count={blocks}", "conv=fdatasync"],
                   check=True, capture_output=True)
    wall = time.perf_counter() - t0
    os.unlink(target)
    return blocks * (4 << 20) / wall / 1e6


def ffmpeg_hls_run(path, directory, size):
    out = os.path.join(directory, "hls")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    t0 = time.perf_counter()
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-c", "copy", "-f", "hls",
                    "-hls_segment_type", "fmp4", "-hls_time", "1", "-hls_playlist_type", "vod",
                    os.path.join(out, "out.m3u8")], check=True)
    wall = time.perf_counter() - t0
    shutil.rmtree(out)
    return size / wall / 1e6


def median(rows, key):
    return statistics.median(r[key] for r in rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--disk-dir", required=True)
    ap.add_argument("--tmpfs-dir", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--paced-seconds", type=int, default=60)
    args = ap.parse_args()
    size = os.path.getsize(args.input)
    print(f"input {args.input}: {size / 1e6:.1f} MB; {args.runs} interleaved runs each", flush=True)

    results = {"disk": [], "dd": [], "tmpfs": [], "ffmpeg": []}
    paced = None
    for where, key, base in (("disk", "disk", "dd"), ("tmpfs", "tmpfs", "ffmpeg")):
        root = args.disk_dir if where == "disk" else args.tmpfs_dir
        data = tempfile.mkdtemp(prefix="openkvs-bench-", dir=root)
        server = Server(args.bin, data)
        try:
            for n in range(args.runs):
                results[key].append(ingest_run(args.bin, server, args.input, size, f"{where}{n}"))
                if base == "dd":
                    results[base].append(dd_run(root, size))
                else:
                    results[base].append(ffmpeg_hls_run(args.input, root, size))
                r = results[key][-1]
                print(f"  {where} run {n}: openkvs {r['mbps']:.0f} MB/s (p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, "
                      f"{r['cpu_s_per_gb']:.2f} CPU s/GB, {r['persisted']} fragments); {base} {results[base][-1]:.0f} MB/s",
                      flush=True)
            if where == "disk" and args.paced_seconds > 0:
                clip = excerpt(args.input, root, args.paced_seconds)
                paced = paced_latency(args.bin, server, clip, 0)
                os.unlink(clip)
                print(f"  disk, paced in real time for {args.paced_seconds} s: persist latency {paced}", flush=True)
        finally:
            server.stop()
            shutil.rmtree(data, ignore_errors=True)

    disk, dd = median(results["disk"], "mbps"), statistics.median(results["dd"])
    tmpfs, ff = median(results["tmpfs"], "mbps"), statistics.median(results["ffmpeg"])
    ratios_disk = [r["mbps"] / d for r, d in zip(results["disk"], results["dd"])]
    ratios_tmpfs = [r["mbps"] / f for r, f in zip(results["tmpfs"], results["ffmpeg"])]
    report = {
        "input_mb": round(size / 1e6, 1),
        "disk": {"openkvs_mbps": round(disk), "dd_fdatasync_mbps": round(dd),
                 "ratio_median": round(statistics.median(ratios_disk), 2), "goal": ">= 0.8",
                 "fast_run_persist_latency_ms_p50": median(results["disk"], "p50"),
                 "fast_run_persist_latency_ms_p99": median(results["disk"], "p99"),
                 "paced_persist_latency_ms": paced, "p99_goal_ms": "< 20 (paced)",
                 "server_cpu_s_per_gb": round(median(results["disk"], "cpu_s_per_gb"), 2)},
        "tmpfs": {"openkvs_mbps": round(tmpfs), "ffmpeg_hls_fmp4_mbps": round(ff),
                  "ratio_median": round(statistics.median(ratios_tmpfs), 2), "goal": ">= 3",
                  "server_cpu_s_per_gb": round(median(results["tmpfs"], "cpu_s_per_gb"), 2)},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())
