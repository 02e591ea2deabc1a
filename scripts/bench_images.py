#!/usr/bin/env python3
"""GetImages speed (issue 11 item 3): images/s for a 720p H.264 stream. Run through
scripts/bench-images.sh.

One `openkvs serve` (release build, temp data dir on --work-dir) ingests the first --seconds of the
720p input with `openkvs put-media --fast`; then, per run, GetImages over that whole range (boto3's
paginator: every page of 25) at --interval ms, as PNG and as JPEG at the source size and as JPEG at
320x180. Baseline in the same run: ffmpeg decoding the same input and writing one image per
interval (`-vf fps=1000/interval`, image2 to tmpfs), the same count, single-threaded decoding as
openkvs's one decode slot per core does per request. Figures: images per wall second, medians,
openkvs/ffmpeg; the server's CPU seconds per image.
"""
import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import boto3

sys.path.insert(0, os.path.dirname(__file__))
from bench_hls import Openkvs, STREAM, cpu_seconds, put_media  # noqa: E402


def cut(src, seconds, out):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", src, "-map", "0", "-c", "copy", "-t",
                    str(seconds), "-cluster_time_limit", "1000000", "-cluster_size_limit", "1000000000",
                    "-f", "matroska", out], check=True)


def get_images(am, start, end, interval, fmt, width=None):
    args = dict(StreamName=STREAM, ImageSelectorType="PRODUCER_TIMESTAMP", StartTimestamp=start,
                EndTimestamp=end, SamplingInterval=interval, Format=fmt, MaxResults=100)
    if width:
        args["WidthPixels"] = width
    if fmt == "JPEG":
        args["FormatConfig"] = {"JPEGQuality": "80"}
    images = 0
    errors = {}
    for page in am.get_paginator("get_images").paginate(**args):
        for image in page["Images"]:
            if image.get("ImageContent"):
                images += 1
            else:
                kind = image.get("Error", "empty")
                errors.setdefault(kind, []).append(round(image["TimeStamp"].timestamp() - start, 1))
    return images, errors


def ffmpeg_images(src, seconds, interval, ext, out_dir, width=None):
    vf = f"fps=1000/{interval}" + (f",scale={width}:-2" if width else "")
    pattern = os.path.join(out_dir, f"f%05d.{ext}")
    t0 = time.perf_counter()
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-threads", "1", "-i", src, "-t", str(seconds),
                    "-map", "0:v", "-vf", vf, "-q:v", "3", pattern], check=True)
    took = time.perf_counter() - t0
    made = len([n for n in os.listdir(out_dir) if n.endswith(ext)])
    for n in os.listdir(out_dir):
        os.unlink(os.path.join(out_dir, n))
    return made, took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--work-dir", default="/var/tmp")
    ap.add_argument("--out-dir", default="/dev/shm")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--interval", type=int, default=200)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="openkvs-bench-images-", dir=a.work_dir)
    out = tempfile.mkdtemp(prefix="openkvs-bench-images-", dir=a.out_dir)
    src = os.path.join(work, "input.mkv")
    cut(a.input, a.seconds, src)
    server = Openkvs(a.bin, work)
    try:
        server.kv.create_stream(StreamName=STREAM, DataRetentionInHours=24)
        put_media(a.bin, server.endpoint, src)
        am = boto3.client("kinesis-video-archived-media", endpoint_url=server.endpoint, **server.creds)
        frags = am.list_fragments(StreamName=STREAM, FragmentSelector={
            "FragmentSelectorType": "PRODUCER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": 0, "EndTimestamp": 4e9}})["Fragments"]
        start = min(f["ProducerTimestamp"] for f in frags)
        last = max(frags, key=lambda f: f["ProducerTimestamp"])
        span = (last["ProducerTimestamp"] - start).total_seconds() + last["FragmentLengthInMilliseconds"] / 1000
        # boto3 sends whole seconds: the range is the whole seconds inside the stream.
        start_s = math.ceil(start.timestamp())
        end_s = math.floor(start.timestamp() + min(span, 300))
        cases = [("PNG", None, "png"), ("JPEG", None, "jpg"), ("JPEG", 320, "jpg")]
        rows = {c: [] for c in cases}
        get_images(am, start_s, end_s, a.interval, "JPEG", 320)  # warm-up
        for run in range(a.runs):
            for case in cases:
                fmt, width, ext = case
                cpu0 = cpu_seconds(server.pids())
                t0 = time.perf_counter()
                images, errors = get_images(am, start_s, end_s, a.interval, fmt, width)
                took = time.perf_counter() - t0
                cpu = cpu_seconds(server.pids()) - cpu0
                made, ff_took = ffmpeg_images(src, end_s - start_s, a.interval, ext, out, width)
                rows[case].append((images / took, made / ff_took, cpu / max(images, 1), images, errors, made))
                errors = {k: f"{len(v)} at {v[:8]} s" for k, v in errors.items()} or 0
                size = f"{width}w" if width else "source size"
                print(f"run {run} {fmt} {size}: openkvs {images} images ({errors} errors) {images / took:.1f}/s, "
                      f"server CPU {cpu / max(images, 1) * 1000:.1f} ms/image; ffmpeg {made} images "
                      f"{made / ff_took:.1f}/s", flush=True)
        print(f"\nGetImages, {a.seconds} s of {os.path.basename(a.input)} (1280x720 H.264), every {a.interval} ms, "
              f"{os.cpu_count()} cores, medians of {a.runs}:")
        print("| format | openkvs images/s | ffmpeg images/s | openkvs/ffmpeg | server CPU ms/image |")
        print("|---|---:|---:|---:|---:|")
        for (fmt, width, _), r in rows.items():
            ok = statistics.median(x[0] for x in r)
            ff = statistics.median(x[1] for x in r)
            cpu = statistics.median(x[2] for x in r) * 1000
            size = f"{width} wide" if width else "1280x720"
            print(f"| {fmt} {size} | {ok:.1f} | {ff:.1f} | {ok / ff:.2f}x | {cpu:.1f} |")
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", work, out])


if __name__ == "__main__":
    main()
