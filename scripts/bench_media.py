#!/usr/bin/env python3
"""GetMedia and GetClip output speed against `ffmpeg -c copy` (issue 10 item 6). Run through
scripts/bench-media.sh.

One `openkvs serve` (temp data dir on --work-dir) ingests the input with `openkvs put-media --fast`;
then, interleaved in one run (ffmpeg MKV, GetMedia, ffmpeg MP4, GetClip, and again) so machine drift
hits both sides of every ratio:
  1. GetMedia EARLIEST of the whole stream, against `ffmpeg -i INPUT -map 0 -c copy -f matroska OUT`;
  2. GetClip (PRODUCER_TIMESTAMP, from the first fragment's start to the 200th's: exactly the first
     200 fragments, found with ListFragments), against `ffmpeg -i INPUT -map 0 -c copy -t SECONDS
     -f mp4 -movflags +faststart OUT` over the same fragments' duration from the start of the file
     (no seek: the same first 200 GOPs; +faststart makes ffmpeg rewrite the file so `moov` comes
     before `mdat`, the layout GetClip sends).
Figures are output bytes per wall second. ffmpeg: the whole process (start, probe, remux, the
file written to --out-dir, a tmpfs by default), the output file's size. openkvs: a plain HTTP/1.1
client (SigV4 signed with botocore, signed before the clock starts) from connect to the last byte
of the payload, the chunked framing taken off and the payload discarded. A GetMedia response of a
finished stream stays open 3 s after its last document (docs/choices.md#getmedia-end): each read's
time and payload total are noted, and the time counted is that of the read that brought the
payload to its final size (the last document, ending with the last fragment's
AWS_KINESISVIDEO_CONTINUATION_TOKEN, which is checked). Both sides read warm: the input and the
stored segment files (same disk) are in the page cache after the untimed warm-up of each.

The client's own ceilings, on the recorded raw responses (headers, the server's exact chunk
framing): in every run, right after each openkvs request, the response written from memory in one
sendall by a separate process over loopback to the same client code (loopback TCP and the client:
what a server with nothing to do but hand the kernel the bytes reaches here); after the runs, the
same parsing code fed from memory in reads of the timed runs' mean size (the client alone,
without the kernel's socket copy).
"""
import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench_hls import Openkvs, busy_seconds, cpu_seconds, perf_profile, put_media

STREAM = "bench-media"
TOKEN_TAG = b"AWS_KINESISVIDEO_CONTINUATION_TOKEN"
READ_SIZE = 4 << 20
GOAL = 2.0

# A one-connection-at-a-time HTTP server that answers every request with the bytes of a file (a
# recorded raw response) held in memory, in one sendall: a server with nothing to do but hand the
# kernel the bytes (sendfile(2) from tmpfs measured slower than this here).
REPLAY = r"""
import re, socket, sys
data = open(sys.argv[1], "rb").read()
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(4)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    req = b""
    while b"\r\n\r\n" not in req:
        req += c.recv(65536)
    head, body = req.split(b"\r\n\r\n", 1)
    n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < n:
        body += c.recv(65536)
    c.sendall(data)
    c.close()
"""


def signed_request(port, path, payload):
    """The bytes of a SigV4-signed POST with a JSON body (signed now, sent later)."""
    body = json.dumps(payload).encode()
    req = AWSRequest(method="POST", url=f"http://127.0.0.1:{port}{path}", data=body,
                     headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials("bench", "bench"), "kinesisvideo", "us-east-1").add_auth(req)
    headers = {"Host": f"127.0.0.1:{port}", "Content-Length": str(len(body))}
    headers.update(req.headers.items())
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode() + body


class Payload:
    """A response body as it arrives: chunked framing taken off (or Content-Length counted), the
    payload bytes counted, optionally written to `sink`, and its last 256 bytes kept."""

    def __init__(self, chunked, length, sink):
        self.chunked, self.left, self.sink = chunked, (0 if chunked else length), sink
        self.line = bytearray()
        self.total = 0
        self.tail = b""
        self.done = not chunked and length == 0

    def _take(self, data, pos, n):
        if self.sink:
            self.sink.write(memoryview(data)[pos:pos + n])
        self.tail = bytes(data[pos + n - 256:pos + n]) if n >= 256 else (self.tail + bytes(data[pos:pos + n]))[-256:]
        self.total += n
        self.left -= n

    def feed(self, data, pos, end):
        while pos < end and not self.done:
            if self.left:
                n = min(self.left, end - pos)
                self._take(data, pos, n)
                pos += n
                if not self.chunked and not self.left:
                    self.done = True
                continue
            nl = data.find(b"\n", pos, end)
            if nl < 0:
                self.line += data[pos:end]
                return
            self.line += data[pos:nl]
            pos = nl + 1
            line = bytes(self.line).strip()
            self.line.clear()
            if line:  # a chunk size; an empty line is the CRLF that ends a chunk's data
                self.left = int(line.split(b";")[0], 16)
                self.done = self.left == 0


def fetch(port, request, buf, sink=None, raw=None, expect=None, at_expect=None):
    """Send `request` on a new connection and read the whole response (read_response)."""
    t0 = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.sendall(request)
        return read_response(sock.recv_into, t0, buf, sink, raw, expect, at_expect)
    finally:
        sock.close()


def read_response(recv_into, t0, buf, sink=None, raw=None, expect=None, at_expect=None):
    """Read a whole HTTP/1.1 response with `recv_into(buf)` (buf reused). Each read's time and
    payload total are noted; `seconds` runs from `t0` to the read that completed the payload.
    `at_expect()` is called once, when the payload reaches `expect` bytes (to sample CPU counters
    at the end rather than after GetMedia's idle wait)."""
    mv = memoryview(buf)
    head = bytearray()
    while True:
        n = recv_into(buf)
        if n == 0:
            raise AssertionError(f"connection closed after {len(head)} header bytes")
        if raw:
            raw.write(mv[:n])
        head += mv[:n]
        end = head.find(b"\r\n\r\n")
        if end >= 0:
            break
    t_first = time.perf_counter()
    lines = head[:end].decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    chunked = headers.get("transfer-encoding", "").lower() == "chunked"
    body = Payload(chunked, int(headers.get("content-length", 0)), sink)
    body.feed(head, end + 4, len(head))
    marks = [(time.perf_counter(), body.total)]
    reached = False
    while not body.done:
        if expect is not None and not reached and body.total >= expect:
            reached = True
            at_expect()
        n = recv_into(buf)
        if n == 0:
            break
        if raw:
            raw.write(mv[:n])
        body.feed(buf, 0, n)
        marks.append((time.perf_counter(), body.total))
    t_end = time.perf_counter()
    if expect is not None and not reached:
        at_expect()
    if not body.done:
        raise AssertionError(f"status {status}: the body ended early ({body.total} bytes; {headers})")
    t_last = next(t for t, total in marks if total >= body.total)
    return {"status": status, "headers": headers, "bytes": body.total, "tail": body.tail,
            "seconds": t_last - t0, "first_byte_s": t_first - t0, "until_close_s": t_end - t0,
            "gbps": body.total / (t_last - t0) / 1e9, "reads": len(marks)}


class Counters:
    """CPU seconds of the server, of this client and of the rest of the machine over one run."""

    def __init__(self, pids):
        self.pids = pids
        self.start = self._now()
        self.end = None

    def _now(self):
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (cpu_seconds(self.pids) if self.pids else 0.0, me.ru_utime + me.ru_stime,
                kids.ru_utime + kids.ru_stime, busy_seconds())

    def stop(self):
        if self.end is None:
            self.end = self._now()

    def figures(self):
        server, client, children, busy = (b - a for a, b in zip(self.start, self.end))
        return {"server_cpu_s": round(server, 3), "client_cpu_s": round(client, 3),
                "ffmpeg_cpu_s": round(children, 3),
                "other_cpu_s": round(max(0.0, busy - server - client - children), 3)}


def run_openkvs(port, request, buf, pid, expect, check):
    counters = Counters([pid])
    r = fetch(port, request, buf, expect=expect, at_expect=counters.stop)
    counters.stop()
    check(r)
    r.update(counters.figures())
    del r["tail"]
    return r


def run_ffmpeg(args, out):
    if os.path.exists(out):
        os.unlink(out)
    counters = Counters([])
    t0 = time.perf_counter()
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args, out], check=True)
    seconds = time.perf_counter() - t0
    counters.stop()
    size = os.path.getsize(out)
    r = {"bytes": size, "seconds": seconds, "gbps": size / seconds / 1e9}
    r.update(counters.figures())
    return r


def probe(path):
    """Per stream: codec, packets, duration (ffprobe reads every packet)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-show_entries",
                          "stream=codec_name,nb_read_packets:format=duration", "-of", "json", path],
                         check=True, capture_output=True, text=True).stdout
    j = json.loads(out)
    return {"streams": [f"{s['codec_name']} {s.get('nb_read_packets')} packets" for s in j["streams"]],
            "duration_s": round(float(j["format"].get("duration", "nan")), 3)}


def top_boxes(path):
    """The top-level ISO-BMFF boxes of a file: [(type, size)]."""
    boxes = []
    with open(path, "rb") as f:
        size_all = os.fstat(f.fileno()).st_size
        off = 0
        while off < size_all:
            f.seek(off)
            h = f.read(16)
            size, kind = int.from_bytes(h[:4], "big"), h[4:8].decode("latin-1")
            header = 8
            if size == 1:
                size, header = int.from_bytes(h[8:16], "big"), 16
            if size < header or off + size > size_all:
                raise AssertionError(f"{path}: box {kind!r} at {off} of size {size} overruns the file")
            boxes.append((kind, size - header))
            off += size
    return boxes


def parse_ceiling(raw_path, read_size, runs, buf):
    """The client alone, GB/s per run: its parsing loop over the recorded raw response held in
    memory, copied into the read buffer `read_size` bytes at a time (the timed runs' mean read):
    everything the client does but the kernel's socket copy."""
    with open(raw_path, "rb") as f:
        data = memoryview(f.read())
    figures = []
    for _ in range(runs + 1):
        pos = 0

        def copy(into):
            nonlocal pos
            n = min(read_size, len(data) - pos)
            into[:n] = data[pos:pos + n]
            pos += n
            return n

        figures.append(read_response(copy, time.perf_counter(), buf)["gbps"])
    return figures[1:]  # the first warms up


class Replay:
    """A recorded raw response served by another process from memory over loopback TCP,
    read by the same client code: loopback and the client, a bound for any HTTP server here."""

    def __init__(self, raw_path, request, buf):
        self.request, self.buf = request, buf
        self.proc = subprocess.Popen([sys.executable, "-c", REPLAY, raw_path], stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())
        self.run()  # warm

    def run(self):
        return fetch(self.port, self.request, self.buf)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return model


def filesystem(path):
    out = subprocess.run(["df", "-T", path], capture_output=True, text=True).stdout.splitlines()[-1].split()
    return f"{out[1]} on {out[0]}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--work-dir", default="/var/tmp", help="where the server's data dir goes (the input's disk)")
    ap.add_argument("--out-dir", default="/dev/shm", help="where ffmpeg writes its output (and the recorded responses)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clip-fragments", type=int, default=200)
    ap.add_argument("--perf", action="store_true", help="after the timed runs, profile the server with perf record -g")
    ap.add_argument("--keep", action="store_true", help="keep the work directories")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="openkvs-bench-media-", dir=args.work_dir)
    out = tempfile.mkdtemp(prefix="openkvs-bench-media-", dir=args.out_dir)
    ffmpeg_version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    print(f"input {args.input} ({os.path.getsize(args.input) / 1e6:.1f} MB, {filesystem(args.input)}); "
          f"server data dir {work} ({filesystem(work)}); ffmpeg output and recorded responses in {out} "
          f"({filesystem(out)}); {args.runs} interleaved runs; {os.cpu_count()} CPUs ({machine()}), "
          f"Linux {platform.release()}, {ffmpeg_version}; load average {os.getloadavg()[0]:.2f}", flush=True)
    server = None
    replays = {}
    buf = bytearray(READ_SIZE)
    try:
        server = Openkvs(args.bin, work)
        server.kv.create_stream(StreamName=STREAM, DataRetentionInHours=24)
        t0 = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=2)
        t_ingest = time.perf_counter()
        ingest = put_media(args.bin, server.endpoint, args.input, STREAM)
        t_ingest = time.perf_counter() - t_ingest
        time.sleep(1.1)
        t1 = datetime.datetime.now(datetime.timezone.utc)
        creds = server.creds
        am_url = server.kv.get_data_endpoint(StreamName=STREAM, APIName="LIST_FRAGMENTS")["DataEndpoint"]
        am = boto3.client("kinesis-video-archived-media", endpoint_url=am_url, **creds)
        frags = []
        for page in am.get_paginator("list_fragments").paginate(
                StreamName=STREAM, FragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP",
                                                     "TimestampRange": {"StartTimestamp": t0, "EndTimestamp": t1}}):
            frags += page["Fragments"]
        frags.sort(key=lambda f: int(f["FragmentNumber"]))
        if len(frags) != ingest["Persisted"]:
            raise AssertionError(f"ListFragments: {len(frags)} fragments, {ingest['Persisted']} ingested")
        stored = sum(f["FragmentSizeInBytes"] for f in frags)
        print(f"ingested {len(frags)} fragments ({stored / 1e6:.1f} MB of frames) in {t_ingest:.1f} s", flush=True)

        for api in ("GET_MEDIA", "GET_CLIP"):  # both on this server
            ep = server.kv.get_data_endpoint(StreamName=STREAM, APIName=api)["DataEndpoint"]
            assert ep.rstrip("/") == server.endpoint, (api, ep)
        media_req = signed_request(server.port, "/getMedia",
                                   {"StreamName": STREAM, "StartSelector": {"StartSelectorType": "EARLIEST"}})
        k = min(args.clip_fragments, len(frags))
        clip_frags = frags[:k]
        start_s = clip_frags[0]["ProducerTimestamp"].timestamp()
        end_s = clip_frags[-1]["ProducerTimestamp"].timestamp()
        clip_req = signed_request(server.port, "/getClip", {
            "StreamName": STREAM, "ClipFragmentSelector": {
                "FragmentSelectorType": "PRODUCER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": round(start_s, 3), "EndTimestamp": round(end_s, 3)}}})
        # The same span of the source file: up to the start of the next fragment (or the last one's end).
        if len(frags) > k:
            clip_seconds = frags[k]["ProducerTimestamp"].timestamp() - start_s
        else:
            clip_seconds = end_s - start_s + clip_frags[-1]["FragmentLengthInMilliseconds"] / 1000
        clip_seconds = round(clip_seconds, 3)
        ff_mkv_args = ["-i", args.input, "-map", "0", "-c", "copy", "-f", "matroska"]
        ff_mp4_args = ["-i", args.input, "-map", "0", "-c", "copy", "-t", str(clip_seconds),
                       "-f", "mp4", "-movflags", "+faststart"]
        ff_mkv, ff_mp4 = os.path.join(out, "ffmpeg.mkv"), os.path.join(out, "ffmpeg.mp4")

        # Warm-up (untimed) of each, recording the responses and checking them.
        media_raw, media_payload = os.path.join(out, "getmedia.http"), os.path.join(out, "getmedia.mkv")
        with open(media_raw, "wb") as raw, open(media_payload, "wb") as sink:
            w = fetch(server.port, media_req, buf, sink=sink, raw=raw)
        last = frags[-1]["FragmentNumber"]
        if w["status"] != 200 or w["headers"].get("content-type") != "video/webm":
            raise AssertionError(f"GetMedia: {w['status']} {w['headers']}")
        with open(media_payload, "rb") as f:
            tokens = f.read().count(TOKEN_TAG)
        if tokens != len(frags) or not w["tail"].endswith(last.encode()) or TOKEN_TAG not in w["tail"]:
            raise AssertionError(f"GetMedia payload: {tokens} continuation tokens for {len(frags)} fragments, "
                                 f"ends {w['tail'][-80:]!r}, last fragment {last}")
        media_bytes = w["bytes"]
        clip_raw, clip_body = os.path.join(out, "getclip.http"), os.path.join(out, "getclip.mp4")
        with open(clip_raw, "wb") as raw, open(clip_body, "wb") as sink:
            w = fetch(server.port, clip_req, buf, sink=sink, raw=raw)
        if w["status"] != 200 or w["headers"].get("content-type") != "video/mp4":
            raise AssertionError(f"GetClip: {w['status']} {w['headers']} {open(clip_body, 'rb').read(300)!r}")
        boxes = top_boxes(clip_body)
        clip_stored = sum(f["FragmentSizeInBytes"] for f in clip_frags)
        if [b[0] for b in boxes] != ["ftyp", "moov", "mdat"] or boxes[2][1] != clip_stored:
            raise AssertionError(f"GetClip boxes {boxes}: expected ftyp, moov, mdat of {clip_stored} bytes")
        clip_bytes = w["bytes"]
        ffmpeg_mkv_warm = run_ffmpeg(ff_mkv_args, ff_mkv)
        ffmpeg_mp4_warm = run_ffmpeg(ff_mp4_args, ff_mp4)
        if top_boxes(ff_mp4)[1][0] != "moov":
            raise AssertionError(f"ffmpeg +faststart: {top_boxes(ff_mp4)}")
        probes = {"getmedia": probe(media_payload), "ffmpeg_mkv": probe(ff_mkv),
                  "getclip": probe(clip_body), "ffmpeg_mp4": probe(ff_mp4)}
        print(f"GetMedia EARLIEST: {media_bytes / 1e6:.1f} MB, {len(frags)} documents ({probes['getmedia']}); "
              f"ffmpeg MKV {ffmpeg_mkv_warm['bytes'] / 1e6:.1f} MB ({probes['ffmpeg_mkv']})", flush=True)
        print(f"GetClip of {k} fragments ({start_s:.3f} to {end_s:.3f}): {clip_bytes / 1e6:.1f} MB, moov "
              f"{boxes[1][1] / 1e3:.1f} kB, mdat = the fragments' {clip_stored} stored bytes ({probes['getclip']}); "
              f"ffmpeg -t {clip_seconds} MP4 {ffmpeg_mp4_warm['bytes'] / 1e6:.1f} MB ({probes['ffmpeg_mp4']})",
              flush=True)
        for path in (media_payload, clip_body):
            os.unlink(path)
        replays["getmedia"] = Replay(media_raw, media_req, buf)
        replays["getclip"] = Replay(clip_raw, clip_req, buf)

        def check_media(r):
            # MILLIS_BEHIND_NOW grows with time: a few more digits, never fewer.
            if (r["status"] != 200 or not media_bytes <= r["bytes"] <= media_bytes + 10 * len(frags)
                    or not r["tail"].endswith(last.encode()) or TOKEN_TAG not in r["tail"]):
                raise AssertionError(f"GetMedia run: {r['status']} {r['bytes']} bytes (warm-up {media_bytes}), "
                                     f"ends {r['tail'][-80:]!r}")

        def check_clip(r):
            if r["status"] != 200 or r["bytes"] != clip_bytes:
                raise AssertionError(f"GetClip run: {r['status']} {r['bytes']} bytes (warm-up {clip_bytes})")

        rows = {"getmedia": [], "ffmpeg_mkv": [], "getclip": [], "ffmpeg_mp4": [], "replay_getmedia": [],
                "replay_getclip": []}
        for n in range(args.runs):
            fm = run_ffmpeg(ff_mkv_args, ff_mkv)
            om = run_openkvs(server.port, media_req, buf, server.proc.pid, media_bytes, check_media)
            rm = replays["getmedia"].run()
            fc = run_ffmpeg(ff_mp4_args, ff_mp4)
            oc = run_openkvs(server.port, clip_req, buf, server.proc.pid, clip_bytes, check_clip)
            rc = replays["getclip"].run()
            for key, r in (("ffmpeg_mkv", fm), ("getmedia", om), ("ffmpeg_mp4", fc), ("getclip", oc),
                           ("replay_getmedia", rm), ("replay_getclip", rc)):
                rows[key].append(r)
            print(f"  run {n}: GetMedia {om['gbps']:.3f} GB/s ({om['seconds'] * 1e3:.0f} ms, first byte "
                  f"{om['first_byte_s'] * 1e3:.1f} ms, server CPU {om['server_cpu_s']} s, client "
                  f"{om['client_cpu_s']} s) vs ffmpeg MKV {fm['gbps']:.3f} GB/s ({fm['seconds'] * 1e3:.0f} ms, "
                  f"CPU {fm['ffmpeg_cpu_s']} s): {om['gbps'] / fm['gbps']:.2f}x; GetClip {oc['gbps']:.3f} GB/s "
                  f"({oc['seconds'] * 1e3:.0f} ms, server CPU {oc['server_cpu_s']} s) vs ffmpeg MP4 "
                  f"{fc['gbps']:.3f} GB/s ({fc['seconds'] * 1e3:.0f} ms, CPU {fc['ffmpeg_cpu_s']} s): "
                  f"{oc['gbps'] / fc['gbps']:.2f}x; loopback replay {rm['gbps']:.3f} / {rc['gbps']:.3f} GB/s; "
                  f"other processes' CPU {om['other_cpu_s']} / "
                  f"{fm['other_cpu_s']} / {oc['other_cpu_s']} / {fc['other_cpu_s']} s", flush=True)

        parse = {}
        for key, raw_path in (("getmedia", media_raw), ("getclip", clip_raw)):
            mean_read = int(statistics.mean(r["bytes"] / r["reads"] for r in rows[key]))
            parse[key] = {"gbps": statistics.median(parse_ceiling(raw_path, mean_read, args.runs, buf)),
                          "mean_read_bytes": mean_read}
        print(f"client parsing ceiling (the recorded responses from memory): GetMedia {parse['getmedia']['gbps']:.2f} "
              f"GB/s, GetClip {parse['getclip']['gbps']:.2f} GB/s", flush=True)

        profiles = None
        if args.perf:
            def loop(request, expect, check, seconds):
                def during():
                    end = time.time() + seconds
                    while time.time() < end:
                        run_openkvs(server.port, request, buf, server.proc.pid, expect, check)
                return during
            profiles = {
                "getmedia": perf_profile(server.proc.pid, 10, work, "getmedia",
                                         loop(media_req, media_bytes, check_media, 10)),
                "getclip": perf_profile(server.proc.pid, 5, work, "getclip",
                                        loop(clip_req, clip_bytes, check_clip, 5)),
            }

        def med(key, field="gbps"):
            return statistics.median(r[field] for r in rows[key])

        def ratios(a, b):
            return [x["gbps"] / y["gbps"] for x, y in zip(rows[a], rows[b])]

        def section(o, f, what):
            return {
                "openkvs_bytes": rows[o][0]["bytes"], "ffmpeg_bytes": rows[f][0]["bytes"],
                "openkvs_gbps_per_run": [round(r["gbps"], 3) for r in rows[o]],
                "ffmpeg_gbps_per_run": [round(r["gbps"], 3) for r in rows[f]],
                "openkvs_gbps": round(med(o), 3), "ffmpeg_gbps": round(med(f), 3),
                "openkvs_seconds": round(med(o, "seconds"), 4), "ffmpeg_seconds": round(med(f, "seconds"), 4),
                "ratio_per_run": [round(x, 2) for x in ratios(o, f)],
                "ratio_median": round(statistics.median(ratios(o, f)), 2), "goal": f">= {GOAL}",
                "openkvs_first_byte_ms": round(med(o, "first_byte_s") * 1e3, 1),
                "openkvs_server_cpu_s": med(o, "server_cpu_s"), "openkvs_client_cpu_s": med(o, "client_cpu_s"),
                "ffmpeg_cpu_s": med(f, "ffmpeg_cpu_s"),
                "client_parse_ceiling_gbps": round(parse[o]["gbps"], 3),
                "client_mean_read_bytes": parse[o]["mean_read_bytes"],
                "client_loopback_replay_gbps_per_run": [round(r["gbps"], 3) for r in rows["replay_" + o]],
                "client_loopback_replay_gbps": round(med("replay_" + o), 3),
                "other_cpu_s_per_run": [[x["other_cpu_s"], y["other_cpu_s"]] for x, y in zip(rows[o], rows[f])],
                "what": what,
            }

        report = {
            "setup": {"cpus": os.cpu_count(), "cpu": machine(), "kernel": platform.release(), "ffmpeg": ffmpeg_version,
                      "input_bytes": os.path.getsize(args.input), "fragments": len(frags), "runs": args.runs,
                      "data_dir_fs": filesystem(work), "ffmpeg_output_fs": filesystem(out),
                      "load_average_end": [round(x, 2) for x in os.getloadavg()]},
            "getmedia": section("getmedia", "ffmpeg_mkv",
                                "GetMedia EARLIEST, whole stream, vs ffmpeg -c copy -f matroska"),
            "getclip": section("getclip", "ffmpeg_mp4", f"GetClip of {k} fragments vs ffmpeg -c copy -t {clip_seconds} "
                                                        "-f mp4 -movflags +faststart"),
            "probes": probes,
        }
        if profiles:
            report["perf_top"] = profiles
        print(json.dumps(report, indent=2))
        print()
        for key, name, base in (("getmedia", "GetMedia", "ffmpeg MKV"),
                                ("getclip", f"GetClip ({k} fragments)", "ffmpeg MP4")):
            f = report[key]
            print(f"{name}: openkvs {f['openkvs_gbps']:.3f} GB/s vs {base} {f['ffmpeg_gbps']:.3f} GB/s: "
                  f"{f['ratio_median']:.2f}x (goal >= {GOAL}x) {'PASS' if f['ratio_median'] >= GOAL else 'FAIL'}; "
                  f"client ceilings {f['client_parse_ceiling_gbps']:.2f} GB/s (parsing), "
                  f"{f['client_loopback_replay_gbps']:.2f} GB/s (loopback replay)")
            if f["openkvs_gbps"] > 0.5 * f["client_parse_ceiling_gbps"]:
                print(f"WARNING: {name} ran at over half the client's parsing ceiling: the client is part of "
                      "what is measured")
            if f["openkvs_gbps"] > 0.7 * f["client_loopback_replay_gbps"]:
                print(f"NOTE: {name} ran at {f['openkvs_gbps'] / f['client_loopback_replay_gbps']:.0%} of what "
                      "loopback TCP and this client carry from a server that only writes the bytes: the socket "
                      "copy bounds it")
        noisy = [r["other_cpu_s"] for side in rows.values() for r in side
                 if r.get("other_cpu_s", 0) > 0.1 * r["seconds"]]
        if noisy:
            print(f"WARNING: other processes used up to {max(noisy):.2f} CPU s during a run ({len(noisy)} runs over "
                  f"5% of the 2-CPU machine): the ratios are noisy; rerun on a quiet machine")
    finally:
        for svc in [*replays.values(), server]:
            if svc is not None:
                svc.stop()
        if args.keep:
            print(f"work dirs kept: {work} {out}")
        for d in () if args.keep else (work, out):
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
