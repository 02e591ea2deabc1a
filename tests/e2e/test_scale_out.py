"""Three openkvs nodes on one PostgreSQL catalog and one Garage bucket (issue #9, item 8).

On one machine, loopback only: a private PostgreSQL 15 cluster and a single-node Garage
(tests/e2e/cluster.py), three `openkvs serve` nodes A, B, C with `--catalog postgresql://…
--media s3://… --node-id`, and a TCP proxy in front of them as the load balancer (every node's
--public-url), so producers fail over the way they would behind a real one. Checked:

- a stream created on A is seen on B and C; a delete on B is seen on C;
- a producer streaming in real time to A: every fragment shows in a LIVE playlist read from C
  within 1 s of its PERSISTED ack (the session URL was minted on A: session keys are shared);
- a second PutMedia on B is refused with ConnectionLimitExceededException while A holds the stream;
- A is killed (SIGKILL) mid-ingest: AWS's C producer SDK and `openkvs put-media` go on through B;
  every fragment ever acked PERSISTED is listed from C, and its media is the same bytes from B and
  from C and is, track by track, consecutive frames of the source, byte for byte;
- a holder stopped with SIGSTOP and resumed after B took over commits nothing more;
- GetMedia NOW on C tails a producer on A: every PERSISTED fragment, in order, byte-exact;
- LL-HLS (every node runs --ll-hls): the parts of the fragment A is receiving are listed by A only; C lists
  the stored segments with their parts, serves those parts byte for byte as A does, and answers a blocking
  reload once the next segment is stored on A.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import kvs
import mkv
from cluster import Balancer, Garage, Postgres, need_garage_script, wait_until
from conftest import FIXTURES, Server, client_env, read_acks, unique_name
from test_players import media_playlist_urls, playlist_uris

FIXTURE = FIXTURES / "h264_aac.mkv"
# What a live LIVE playlist on another node may lag a PERSISTED ack by (issue #9, item 6).
CROSS_NODE_VISIBILITY_S = 1.0


class Grid:
    def __init__(self, root: Path):
        self.root = root
        self.pg = Postgres()
        self.garage = Garage(root / "garage")
        self.nodes: dict[str, Server] = {}
        self.lb: Balancer | None = None

    def start(self):
        need_garage_script()
        self.pg.start()
        self.garage.start()
        url = self.pg.create_database("openkvs")
        self.lb = Balancer(0)
        for name in "abc":
            # LL-HLS on every node (docs/architecture.md#low-latency-hls: parts in flight on the
            # ingesting node only); the other tests read plain segments and ignore its tags.
            args = ["--catalog", url, *self.garage.media_args("archive"), "--node-id", name,
                    "--public-url", self.lb.endpoint, "--ll-hls"]
            self.nodes[name] = Server(self.root / name, extra_args=args, extra_env=self.garage.node_env())
        for node in self.nodes.values():
            node.start()
        self.lb.point_at(self.nodes["a"].port)
        return self

    def stop(self):
        for node in self.nodes.values():
            if node.proc and node.proc.poll() is None:
                try:
                    os.kill(node.proc.pid, signal.SIGCONT)
                except OSError:
                    pass
            node.stop()
        if self.lb:
            self.lb.close()
        self.garage.stop()
        self.pg.stop()

    def __getitem__(self, name: str) -> Server:
        return self.nodes[name]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    g = Grid(tmp_path_factory.mktemp("scale-out"))
    try:
        yield g.start()
    finally:
        g.stop()


@pytest.fixture()
def node_a(grid):
    """Node A up and the balancer pointing at it (a test may have killed it)."""
    if not grid["a"].alive():
        grid["a"].start()
    grid.lb.point_at(grid["a"].port)
    return grid["a"]


@pytest.fixture(scope="module")
def long_input(tmp_path_factory) -> Path:
    """The fixture looped to 16 s (16 one-second clusters, each starting at a key frame)."""
    out = tmp_path_factory.mktemp("input") / "long.mkv"
    with open(out, "wb") as f:
        p = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-stream_loop", "3", "-i", str(FIXTURE),
                            "-map", "0", "-c", "copy", "-cluster_time_limit", "1000000",
                            "-cluster_size_limit", "1000000000", "-f", "matroska", "pipe:1"],
                           stdout=f, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    m = mkv.parse_file(out)
    assert len(m.complete_clusters) >= 15, m.summary()
    return out


def on_node(url: str, node: Server) -> str:
    """`url` (minted with the balancer's address) sent to `node` instead."""
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(u._replace(netloc=f"127.0.0.1:{node.port}"))


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def frames_by_track(*paths: Path) -> dict[int, list[bytes]]:
    """Every frame of the sources per track, in file order (the files one after the other)."""
    out: dict[int, list[bytes]] = {}
    for path in paths:
        buf = path.read_bytes()
        m = mkv.parse(buf)
        for c in m.complete_clusters:
            for b, frame in mkv.frames_of(buf, c):
                out.setdefault(b.track, []).append(frame)
    return out


def boxes(buf: bytes, start: int = 0, end: int | None = None):
    """(type, payload start, box end) of the ISO BMFF boxes in buf[start:end]."""
    pos, end = start, len(buf) if end is None else end
    while pos + 8 <= end:
        size = int.from_bytes(buf[pos:pos + 4], "big")
        kind = buf[pos + 4:pos + 8].decode("latin-1")
        header = 8
        if size == 1:
            size, header = int.from_bytes(buf[pos + 8:pos + 16], "big"), 16
        assert size >= header and pos + size <= end, f"bad box {kind} at {pos}"
        yield kind, pos + header, pos + size
        pos += size


def fmp4_samples(body: bytes) -> list[bytes]:
    """The samples of a one-track fMP4 media segment (moof/traf/trun, data offsets from the moof)."""
    samples = []
    for kind, p, e in boxes(body):
        if kind != "moof":
            continue
        moof_start = p - 8
        for tk, tp, te in boxes(body, p, e):
            if tk != "traf":
                continue
            default_size = 0
            for bk, bp, be in boxes(body, tp, te):
                flags = int.from_bytes(body[bp + 1:bp + 4], "big")
                if bk == "tfhd":
                    q = bp + 8 + (8 if flags & 1 else 0) + (4 if flags & 2 else 0) + (4 if flags & 8 else 0)
                    if flags & 0x10:
                        default_size = int.from_bytes(body[q:q + 4], "big")
                elif bk == "trun":
                    count = int.from_bytes(body[bp + 4:bp + 8], "big")
                    q = bp + 8
                    offset = moof_start
                    if flags & 1:
                        offset += int.from_bytes(body[q:q + 4], "big", signed=True)
                        q += 4
                    if flags & 4:
                        q += 4
                    for _ in range(count):
                        size = default_size
                        if flags & 0x100:
                            q += 4
                        if flags & 0x200:
                            size = int.from_bytes(body[q:q + 4], "big")
                            q += 4
                        if flags & 0x400:
                            q += 4
                        if flags & 0x800:
                            q += 4
                        samples.append(body[offset:offset + size])
                        offset += size
    return samples


def is_source_media(body: bytes, source: dict[int, list[bytes]], track: int) -> bool:
    """Whether the media segment `body` of `track` is a run of consecutive frames of that track
    of the source, byte for byte."""
    samples = fmp4_samples(body)
    frames = source.get(track, [])
    if not samples:
        return False
    for start in (i for i, f in enumerate(frames) if f == samples[0]):
        if frames[start:start + len(samples)] == samples:
            return True
    return False


def send_paced(pm: kvs.PutMedia, path: Path, *, until=None):
    """Sends the file's header, then each cluster at its real-time moment (like a camera)."""
    buf = path.read_bytes()
    m = mkv.parse(buf)
    clusters = m.complete_clusters
    pm.send(buf[:clusters[0].offset])
    t0 = time.monotonic()
    first_ms = clusters[0].timecode_ms
    for c in clusters:
        # A cluster goes out once its last frame would have been captured.
        due = t0 + (c.timecode_ms - first_ms) / 1000 + 1.0
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if not pm.send(buf[c.offset:c.end]) or (until and until()):
            return False
    return pm.finish()


def live_fragment_numbers(media_playlist_url: str) -> list[str]:
    text = get(media_playlist_url).decode()
    nums = []
    for kind, url in playlist_uris(text, media_playlist_url):
        if kind == "segment":
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
            nums.append(q["FragmentNumber"][0])
    return nums


def fragment_media(node: Server, session_url: str) -> dict[tuple[int, str], bytes]:
    """(TrackNumber, FragmentNumber) → media segment bytes of every segment of an ON_DEMAND
    session (one media playlist per track), read from `node`."""
    out = {}
    for track, url in media_playlist_urls(on_node(session_url, node)).items():
        for kind, seg in playlist_uris(get(on_node(url, node)).decode(), on_node(url, node)):
            if kind == "segment":
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(seg).query)
                out[(track, q["FragmentNumber"][0])] = get(seg)
    return out


def check_archive(grid: Grid, stream: str, acked: set[str], source: dict[int, list[bytes]]) -> list[dict]:
    """Every acked fragment is listed from C; each listed fragment's media is the same bytes from B
    and from C, and each track's samples are consecutive frames of the source, byte for byte.
    Returns the listed fragments."""
    frags = kvs.all_fragments(grid["c"].am(), stream)
    listed = {f["FragmentNumber"] for f in frags}
    missing = acked - listed
    assert not missing, f"acked PERSISTED but not listed from C: {sorted(missing)}"
    t0 = min(int(f["ServerTimestamp"].timestamp() * 1000) for f in frags) / 1000 - 1
    t1 = max(int(f["ServerTimestamp"].timestamp() * 1000) for f in frags) / 1000 + 1
    time.sleep(max(0.0, t1 - time.time() + 0.05))  # SERVER_TIMESTAMP ranges must end in the past
    from test_players import ts
    r = grid["c"].am().get_hls_streaming_session_url(
        StreamName=stream, PlaybackMode="ON_DEMAND", MaxMediaPlaylistFragmentResults=5000,
        HLSFragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP",
                             "TimestampRange": {"StartTimestamp": ts(t0), "EndTimestamp": ts(t1)}})
    url = r["HLSStreamingSessionURL"]
    from_b = fragment_media(grid["b"], url)
    from_c = fragment_media(grid["c"], url)
    assert set(from_b) == set(from_c), (sorted(from_b), sorted(from_c))
    assert {number for _, number in from_c} == listed, (sorted(from_c), sorted(listed))
    for (track, number), body in from_c.items():
        assert from_b[(track, number)] == body, f"fragment {number} track {track}: B and C serve different bytes"
        assert is_source_media(body, source, track), \
            f"fragment {number} track {track}: its samples are not consecutive frames of the source"
    return frags


# ---- tests ---------------------------------------------------------------------------------------


def test_a_stream_created_on_one_node_is_seen_on_the_others(grid, node_a):
    name, arn = node_a.create_stream(unique_name("grid"))
    for n in "bc":
        info = grid[n].kv().describe_stream(StreamName=name)["StreamInfo"]
        assert info["StreamARN"] == arn, n
    names = {s["StreamName"] for s in grid["c"].kv().list_streams()["StreamInfoList"]}
    assert name in names
    grid["b"].kv().delete_stream(StreamARN=arn)
    with pytest.raises(Exception) as e:
        grid["c"].kv().describe_stream(StreamName=name)
    assert "ResourceNotFoundException" in str(e.value)


def test_live_playlists_on_other_nodes_follow_the_producer(grid, node_a, long_input, report_figure):
    stream, _ = node_a.create_stream(unique_name("live"))
    pm = kvs.PutMedia(node_a.endpoint, stream)
    sender = __import__("threading").Thread(target=send_paced, args=(pm, long_input), daemon=True)
    sender.start()
    assert pm.wait_for(lambda acks: any(a.get("EventType") == "PERSISTED" for a in acks), 15), pm.describe()

    # A second PutMedia on B while A holds the stream: refused, as AWS refuses a second connection.
    rival = kvs.PutMedia(grid["b"].endpoint, stream)
    status = rival.wait_status(30)
    rival.close()
    assert status == 400, rival.describe()
    assert rival.headers.get("x-amzn-errortype", "").startswith("ConnectionLimitExceededException"), rival.describe()

    # A LIVE session minted on A, read from C.
    url = node_a.am().get_hls_streaming_session_url(StreamName=stream, PlaybackMode="LIVE")["HLSStreamingSessionURL"]
    media_url = on_node(next(iter(media_playlist_urls(on_node(url, grid["c"])).values())), grid["c"])
    first_seen: dict[str, float] = {}
    polling_since = time.monotonic()
    # Until the producer's response has ended and every acked fragment was seen (or 5 s more).
    while not pm.closed or not {a["FragmentNumber"] for a in pm.persisted} <= set(first_seen):
        for n in live_fragment_numbers(media_url):
            first_seen.setdefault(n, time.monotonic())
        if pm.closed and time.monotonic() - pm.ack_times[-1] > 5:
            break
        time.sleep(0.02)
    assert pm.wait_closed(30), pm.describe()
    assert not pm.errors, pm.describe()
    lags = []
    for ack, at in zip(pm.acks, pm.ack_times):
        if ack.get("EventType") != "PERSISTED" or at < polling_since:
            continue
        n = ack["FragmentNumber"]
        assert n in first_seen, f"fragment {n} never showed in C's LIVE playlist"
        lags.append(first_seen[n] - at)
    assert len(lags) >= 8, lags
    lags.sort()
    report_figure({"persisted_on_a_to_listed_in_c_live_playlist_ms": {
        "n": len(lags), "p50": round(lags[len(lags) // 2] * 1000), "max": round(lags[-1] * 1000),
        "poll_ms": 20}})
    assert lags[-1] <= CROSS_NODE_VISIBILITY_S, lags


def test_get_media_on_another_node_tails_the_producer(grid, node_a, long_input, report_figure):
    """GetMedia NOW read from C while a producer streams in real time to A: every fragment acked PERSISTED
    arrives, in order, its frames the source's byte for byte; the wake-up is the catalog's change feed
    (PostgreSQL LISTEN/NOTIFY), so the lag is printed next to the LIVE playlist's."""
    import threading
    from test_get_media import documents, numbers_of
    stream, _ = node_a.create_stream(unique_name("gm"))
    response = grid["c"].client("kinesis-video-media").get_media(
        StreamName=stream, StartSelector={"StartSelectorType": "NOW"})
    received = bytearray()
    arrivals: list[tuple[int, float]] = []

    def read():
        while chunk := response["Payload"]._raw_stream.read1(65536):
            received.extend(chunk)
            arrivals.append((len(received), time.monotonic()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    pm = kvs.PutMedia(node_a.endpoint, stream)
    assert send_paced(pm, long_input), pm.describe()
    assert pm.wait_closed(30), pm.describe()
    assert not pm.errors, pm.describe()
    persisted = {a["FragmentNumber"]: t for a, t in zip(pm.acks, pm.ack_times) if a.get("EventType") == "PERSISTED"}
    reader.join(30)
    assert not reader.is_alive(), "GetMedia on C did not end after the producer on A stopped"
    payload = bytes(received)
    docs = documents(payload)
    assert numbers_of(docs) == sorted(persisted), "every PERSISTED fragment, in ingest order"
    source = frames_by_track(long_input)
    sent = {track: [f for d in docs for f in d["frames"].get(track, [])] for track in source}
    for track, frames in source.items():
        assert sent[track] == frames[:len(sent[track])] and len(sent[track]) >= len(frames) - 60, \
            f"track {track}: GetMedia's frames are not the source's from the start"
    ends = [d["offset"] for d in docs[1:]] + [len(payload)]
    lags = sorted(next(t for n, t in arrivals if n >= end) - persisted[numbers_of([d])[0]]
                  for d, end in zip(docs, ends))
    report_figure({"persisted_on_a_to_get_media_chunk_from_c_ms": {
        "n": len(lags), "p50": round(lags[len(lags) // 2] * 1000), "max": round(lags[-1] * 1000)}})


def sdk_driver_and_frames(source: Path, tmp_path: Path) -> tuple[str, Path]:
    """AWS's C producer SDK driver ($OPENKVS_KVS_PRODUCER_DRIVER, else built now) and `source` as its frame list."""
    from test_producer_c import write_frame_list
    path = os.environ.get("OPENKVS_KVS_PRODUCER_DRIVER")
    if not path:
        from conftest import ROOT
        b = subprocess.run([str(ROOT / "scripts" / "build-kvs-producer-c.sh")], capture_output=True, text=True,
                           timeout=1800)
        assert b.returncode == 0, b.stderr[-4000:]
        path = b.stdout.strip().splitlines()[-1]
    frames = tmp_path / "frames.bin"
    write_frame_list(source, frames)
    return path, frames


def test_ll_hls_parts_in_flight_on_the_ingesting_node_only(grid, node_a, long_input, tmp_path, report_figure):
    from test_ll_hls import parse_ll
    path, frames = sdk_driver_and_frames(long_input, tmp_path)
    stream = unique_name("ll")
    # AWS's C producer SDK, frame by frame in real time, straight to A (the camera's node).
    sdk = subprocess.Popen([path, node_a.endpoint, stream, str(frames), "realtime"], env=client_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        am = grid["c"].am()
        assert wait_until(lambda: len(_listed(am, stream)) >= 2, 30, 0.2), "the SDK's first fragments never landed"
        url = node_a.am().get_hls_streaming_session_url(StreamName=stream, PlaybackMode="LIVE")["HLSStreamingSessionURL"]
        on_a = on_node(media_playlist_urls(on_node(url, node_a))[1], node_a)
        on_c = on_node(on_a, grid["c"])
        a_in_flight = c_in_flight = 0
        c_stored_parts = None
        for _ in range(40):
            a, c = parse_ll(get(on_a).decode()), parse_ll(get(on_c).decode())
            a_in_flight += any(seg["uri"] is None for seg in a["segments"])
            c_in_flight += any(seg["uri"] is None for seg in c["segments"]) or c["hint"] is not None
            stored = [seg for seg in c["segments"] if seg["uri"] and seg["parts"]]
            c_stored_parts = stored[-1] if stored else c_stored_parts
            time.sleep(0.1)
        assert a_in_flight > 0, "A never listed parts of the fragment it was receiving"
        assert c_in_flight == 0, "C listed parts of a fragment in flight on A"
        assert c_stored_parts, "C listed no parts of stored segments"
        base_a, base_c = on_a.rsplit("/", 1)[0] + "/", on_c.rsplit("/", 1)[0] + "/"
        for part in c_stored_parts["parts"]:
            assert get(base_c + part["uri"]) == get(base_a + part["uri"]), part["uri"]
        # A blocking reload on C for the next segment: woken by A's commit through the change feed.
        c = parse_ll(get(on_c).decode())
        next_msn = c["media_sequence"] + len([seg for seg in c["segments"] if seg["uri"]])
        t = time.monotonic()
        text = get(f"{on_c}&_HLS_msn={next_msn}").decode()
        took = time.monotonic() - t
        after = parse_ll(text)
        assert after["media_sequence"] + len([seg for seg in after["segments"] if seg["uri"]]) > next_msn, text
        print(f"LL on several nodes: A listed parts in flight in {a_in_flight}/40 polls, C in none; C's blocking "
              f"reload for msn {next_msn} answered after {took * 1000:.0f} ms")
        report_figure({"other_node_blocking_reload_for_next_segment_ms": round(took * 1000)})
    finally:
        sdk.kill()
        sdk.wait()


def put_media_cmd(endpoint: str, stream: str, source: Path, *args) -> list[str]:
    from conftest import openkvs_bin
    return [openkvs_bin(), "put-media", "--stream-name", stream, "--endpoint-url", endpoint, *map(str, args),
            str(source)]


def test_put_media_resumes_on_another_node_after_a_kill(grid, node_a, long_input, report_figure):
    stream, _ = node_a.create_stream(unique_name("kill"))
    acks = grid.root / f"{stream}.acks"
    # Through the balancer, like a producer that knows the cluster by one name.
    p = subprocess.Popen(put_media_cmd(grid.lb.endpoint, stream, long_input, "--acks", acks), env=client_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    persisted = lambda: [a for a in read_acks(acks) if a.get("EventType") == "PERSISTED"]  # noqa: E731
    assert wait_until(lambda: len(persisted()) >= 3, 20), read_acks(acks)
    grid.lb.point_at(grid["b"].port)
    killed_at = time.monotonic()
    grid["a"].kill9()
    p.communicate(timeout=60)
    before = {a["FragmentNumber"] for a in persisted()}

    # The producer runs again (an SDK reconnects by itself): B takes the stream over once A's writer
    # lease lapses, without the producer seeing a refusal.
    acks2 = grid.root / f"{stream}.acks2"
    p2 = subprocess.run(put_media_cmd(grid.lb.endpoint, stream, FIXTURE, "--acks", acks2), env=client_env(),
                        capture_output=True, timeout=90)
    after = [a for a in read_acks(acks2) if a.get("EventType") == "PERSISTED"]
    assert p2.returncode == 0 and len(after) == 4, (p2.returncode, p2.stdout[-2000:], p2.stderr[-2000:])
    report_figure({"sigkill_of_a_to_resumed_stream_persisted_on_b_s": round(time.monotonic() - killed_at, 2)})
    check_archive(grid, stream, before | {a["FragmentNumber"] for a in after},
                  frames_by_track(long_input, FIXTURE))


def test_producer_sdk_fails_over_after_a_kill(grid, node_a, long_input, tmp_path, report_figure):
    path, frames = sdk_driver_and_frames(long_input, tmp_path)
    stream = unique_name("sdk-kill")  # the SDK creates it
    env = client_env()
    sdk = subprocess.Popen([path, grid.lb.endpoint, stream, str(frames), "realtime"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    am = grid["c"].am()
    assert wait_until(lambda: len(_listed(am, stream)) >= 3, 30, 0.2), "the SDK's first fragments never landed"
    grid.lb.point_at(grid["b"].port)
    killed_at = time.time()
    grid["a"].kill9()
    try:
        out, err = sdk.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        sdk.kill()
        out, err = sdk.communicate()
    (tmp_path / "sdk.log").write_bytes(err)
    import json
    events = [json.loads(x) for x in out.decode(errors="replace").splitlines() if x.strip().startswith("{")]
    acked = {e["fragment_number"] for e in events if e.get("event") == "ack" and e.get("type") == "PERSISTED"}
    why = f"rc={sdk.returncode}\n" + "\n".join(map(str, events[-30:])) + "\n" + err.decode(errors="replace")[-4000:]
    frags = check_archive(grid, stream, acked, frames_by_track(long_input))
    after_kill = [f for f in frags if f["ServerTimestamp"].timestamp() > killed_at]
    assert after_kill, f"nothing was stored after A was killed: the SDK did not go on through B\n{why}"
    first = min(f["ServerTimestamp"].timestamp() for f in after_kill)
    report_figure({"producer_sdk_failover": {"acked_persisted": len(acked), "stored_through_b": len(after_kill),
                                             "sigkill_of_a_to_first_fragment_on_b_s": round(first - killed_at, 2)}})


def _listed(am, stream: str) -> list[dict]:
    try:
        return kvs.all_fragments(am, stream)
    except Exception:  # noqa: BLE001 - the SDK has not created the stream yet
        return []


def test_a_stopped_holder_commits_nothing_after_a_takeover(grid, node_a, long_input):
    stream, _ = node_a.create_stream(unique_name("fence"))
    pm = kvs.PutMedia(node_a.endpoint, stream)
    sender = __import__("threading").Thread(target=send_paced, args=(pm, long_input), daemon=True)
    sender.start()
    assert pm.wait_for(lambda acks: len([a for a in acks if a.get("EventType") == "PERSISTED"]) >= 2, 20), \
        pm.describe()
    os.kill(node_a.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(0.5)
        acked_before = {a["FragmentNumber"] for a in pm.persisted}
        # B takes over once A's lease lapses; its producer's fragments commit.
        rc, summary, err = grid["b"].put_media(stream, FIXTURE, timeout=90)
        assert rc == 0 and summary and summary.get("persisted", 4) >= 4, (rc, summary, err[-2000:])
    finally:
        os.kill(node_a.proc.pid, signal.SIGCONT)
    sender.join(60)
    assert pm.wait_closed(60), pm.describe()
    acked_after = {a["FragmentNumber"] for a in pm.persisted}
    assert acked_after == acked_before, f"A acknowledged after the takeover: {sorted(acked_after - acked_before)}"
    assert pm.errors, f"A resumed and should have refused what it received meanwhile: {pm.describe()}"
    frags = kvs.all_fragments(grid["c"].am(), stream)
    t_b = min(f["ProducerTimestamp"] for f in frags if f["FragmentNumber"] not in acked_before)
    from_a = {f["FragmentNumber"] for f in frags if f["ProducerTimestamp"] < t_b}
    assert from_a == acked_before, (sorted(from_a), sorted(acked_before))


def test_engines_that_go_away_give_retryable_errors_and_come_back(grid, node_a):
    """PostgreSQL stopped: calls get 503 ServiceUnavailableException, and the nodes serve again
    when it is back, without a restart. The bucket not answering (Garage stopped with SIGSTOP):
    PutMedia acknowledges ERROR, nothing acknowledged is lost, and after SIGCONT ingest works
    again. (Fragments the server had already queued when it gave up may still be stored once the
    bucket answers, unacknowledged: a producer re-sends them, as after any lost ack.)"""
    stream, _ = node_a.create_stream(unique_name("outage"))

    def put(name: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
        path = grid.root / f"{stream}.{name}.acks"
        p = subprocess.run(put_media_cmd(node_a.endpoint, stream, FIXTURE, "--acks", path), env=client_env(),
                           capture_output=True, timeout=120)
        return p, read_acks(path)

    def persisted(acks: list[dict]) -> set[str]:
        return {a["FragmentNumber"] for a in acks if a.get("EventType") == "PERSISTED"}

    p, before = put("before")
    assert p.returncode == 0 and len(persisted(before)) == 4, (p.returncode, before, p.stderr[-2000:])

    grid.pg.stop_server()
    try:
        with pytest.raises(Exception) as e:
            grid["c"].kv().describe_stream(StreamName=stream)
        assert "ServiceUnavailableException" in str(e.value), e.value
        assert getattr(e.value, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode") == 503, e.value
    finally:
        grid.pg.start_server()
    back = wait_until(lambda: _describe_ok(grid["c"], stream), 30, 0.25)
    assert back, "node C did not recover after PostgreSQL came back"

    os.kill(grid.garage.pid(), signal.SIGSTOP)
    try:
        p, during = put("during")
    finally:
        os.kill(grid.garage.pid(), signal.SIGCONT)
    assert [a for a in during if a.get("EventType") == "ERROR"], (p.returncode, during, p.stderr[-2000:])
    assert not persisted(during), during
    p, after = put("after")
    assert p.returncode == 0 and len(persisted(after)) == 4, \
        f"ingest did not recover after the bucket came back: {after} {p.stderr[-2000:]}"
    frags = kvs.all_fragments(grid["c"].am(), stream)
    assert len(frags) <= 12, frags
    check_archive(grid, stream, persisted(before) | persisted(after), frames_by_track(FIXTURE))


def _describe_ok(node: Server, stream: str) -> bool:
    try:
        node.kv().describe_stream(StreamName=stream)
        return True
    except Exception:  # noqa: BLE001 - still down
        return False


def test_bad_or_unreachable_engines_stop_the_start_with_one_line(grid, tmp_path):
    from conftest import openkvs_bin
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENKVS_", "AWS_"))}
    garage = grid.garage.env
    s3 = ["--media", "s3://openkvs/x", "--s3-endpoint", garage["OPENKVS_S3_ENDPOINT"], "--s3-region", "garage"]
    keys = grid.garage.node_env()
    cases = [
        ("unreachable catalog", ["--catalog", "postgresql://postgres@localhost/x?host=/nonexistent&port=5432", *s3],
         keys, "catalog (PostgreSQL)"),
        ("no such database", ["--catalog", grid.pg.url("missing"), *s3], keys, "catalog (PostgreSQL)"),
        ("wrong S3 secret", ["--catalog", grid.pg.url("openkvs"), *s3],
         {**keys, "OPENKVS_S3_SECRET_ACCESS_KEY": "wrong"}, "media store (S3)"),
        ("no S3 keys", ["--catalog", grid.pg.url("openkvs"), *s3], {}, "OPENKVS_S3_ACCESS_KEY_ID"),
        ("bad media URL", ["--media", "file:///tmp/x"], keys, "--media must be s3://"),
        ("catalog without shared media", ["--catalog", grid.pg.url("openkvs")], {}, "needs --media s3://"),
    ]
    for what, args, extra, expect in cases:
        p = subprocess.run([openkvs_bin(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"),
                            *args], env={**env, **extra}, capture_output=True, text=True, timeout=60)
        last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
        assert p.returncode != 0, f"{what}: started anyway\n{p.stderr[-2000:]}"
        assert "panicked" not in p.stderr, f"{what}: {p.stderr[-2000:]}"
        assert last.startswith("openkvs serve: ") and expect in last, f"{what}: {last!r}"
