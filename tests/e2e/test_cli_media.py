"""The streaming-output commands against the real AWS CLI (v1): `kinesis-video-media get-media`,
`kinesis-video-archived-media get-media-for-fragment-list` and `get-clip`, which write the response body to a
positional OUTFILE and print the other output members (ContentType) as the output document.

Both CLIs run with the same arguments against the same server, each with its own OUTFILE: stdout and
(normalised) stderr must be equal, exit statuses agree on success/failure (openkvs's follow AWS CLI v2's
documented classes, checked against fixed values as in test_cli.py), and an OUTFILE exists after one CLI
exactly when it exists after the other. Successful OUTFILEs are byte-identical (GetMedia: but for each
document's AWS_KINESISVIDEO_MILLIS_BEHIND_NOW, which depends on when the response was made) and hold the
ingested frames.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

import kvs
import mkv
from conftest import FIXTURES, aws_cli, client_env, openkvs_bin, unique_name
from test_cli import normalize_err

GET_MEDIA = ["kinesis-video-media", "get-media"]
GET_MEDIA_FOR_FRAGMENT_LIST = ["kinesis-video-archived-media", "get-media-for-fragment-list"]
GET_CLIP = ["kinesis-video-archived-media", "get-clip"]
# Well-formed fragment numbers of no stream.
UNKNOWN_FRAGMENT = "91343852333181432392682062607743920146264672789"


def run(prog: list[str], server, args: list[str], timeout: float = 60):
    env = client_env()
    cmd = [*prog, "--endpoint-url", server.endpoint, *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def both(server, tmp_path, *args: str, expect_rc: int = 0):
    """Runs the AWS CLI and openkvs with `{out}` in `args` replaced by a path of each one's own; asserts equal
    stdout and normalised stderr, that the outfile exists after both or neither; returns the two paths."""
    out_a, out_o = tmp_path / "aws.out", tmp_path / "openkvs.out"
    rc_a, stdout_a, err_a = run(aws_cli(), server, [a.replace("{out}", str(out_a)) for a in args])
    rc_o, stdout_o, err_o = run([openkvs_bin()], server, [a.replace("{out}", str(out_o)) for a in args])
    err_a_same = normalize_err(err_a.replace(str(out_a), "{out}"))
    err_o_same = normalize_err(err_o.replace(str(out_o), "{out}"))
    assert stdout_o == stdout_a, f"stdout differs for {args}:\n--- aws\n{stdout_a}\n--- openkvs\n{stdout_o}\n{err_o}"
    assert err_o_same == err_a_same, f"stderr differs for {args}:\n--- aws\n{err_a}\n--- openkvs\n{err_o}"
    assert rc_o == expect_rc, (rc_o, err_o)
    assert (rc_a == 0) == (rc_o == 0), (rc_a, rc_o)
    assert out_a.exists() == out_o.exists(), (out_a.exists(), out_o.exists())
    return out_a, out_o


@pytest.fixture(scope="module")
def media_server(tmp_path_factory):
    from conftest import Server
    s = Server(tmp_path_factory.mktemp("cli-media")).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def stream(media_server):
    """A stream holding the h264+aac fixture (its fragments listed); returns (server, name)."""
    server = media_server
    name = unique_name()
    server.kv().create_stream(StreamName=name, DataRetentionInHours=24)
    rc, _, err = server.put_media(name, FIXTURES / "h264_aac.mkv", "--fast")
    assert rc == 0, err
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        fragments = server.am().list_fragments(StreamName=name, FragmentSelector={
            "FragmentSelectorType": "SERVER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": time.time() - 3600, "EndTimestamp": time.time() + 3600}})["Fragments"]
        if fragments:
            break
        time.sleep(0.2)
    return server, name


def clip_selector(start: float, end: float) -> str:
    return (f"FragmentSelectorType=SERVER_TIMESTAMP,"
            f"TimestampRange={{StartTimestamp={int(start)},EndTimestamp={int(end)}}}")


# Refused before any request is sent: argparse's and botocore's validation errors.
ARGUMENT_ERRORS = [
    [*GET_MEDIA],
    [*GET_MEDIA, "--stream-name", "{name}"],
    [*GET_MEDIA, "--stream-name", "{name}", "--start-selector", "StartSelectorType=EARLIEST"],
    # --fragments takes every following word: the intended outfile becomes a fragment number.
    [*GET_MEDIA_FOR_FRAGMENT_LIST, "--stream-name", "{name}", "--fragments", UNKNOWN_FRAGMENT, "{out}"],
    [*GET_CLIP, "--stream-name", "{name}", "{out}"],
    # Streaming-output operations have no input documents or skeletons (awscli leaves them out).
    [*GET_CLIP, "--generate-cli-skeleton"],
    [*GET_MEDIA, "--stream-name", "{name}", "--start-selector", "StartSelectorType=EARLIEST", "{out}", "second"],
    [*GET_MEDIA, "--start-selector", "StartSelectorType=EARLIEST", "{out}", "--cli-input-json", "{}"],
    [*GET_CLIP, "--clip-fragment-selector", "FragmentSelectorType=SERVER_TIMESTAMP", "--generate-cli-skeleton",
     "output"],
    # Client-side validation.
    [*GET_MEDIA, "--stream-name", "", "--start-selector", "StartSelectorType=EARLIEST", "{out}"],
    [*GET_MEDIA, "--stream-name", "{name}", "--start-selector", "StartSelectorType=EARLIEST,Bogus=1", "{out}"],
    [*GET_MEDIA, "--stream-name", "{name}", "--start-selector", '{"StartSelectorType": }', "{out}"],
    [*GET_CLIP, "--stream-name", "{name}", "--clip-fragment-selector", "FragmentSelectorType=SERVER_TIMESTAMP",
     "{out}"],
    [*GET_CLIP, "--stream-name", "{name}", "--clip-fragment-selector",
     "FragmentSelectorType=SERVER_TIMESTAMP,TimestampRange={StartTimestamp=yesterday,EndTimestamp=1}", "{out}"],
]


@pytest.mark.parametrize("args", ARGUMENT_ERRORS, ids=range(len(ARGUMENT_ERRORS)))
def test_argument_errors_match_aws(stream, tmp_path, args):
    server, name = stream
    _, out_o = both(server, tmp_path, *[a.replace("{name}", name) for a in args], expect_rc=252)
    assert not out_o.exists()


def service_error_cases(name: str) -> list[list[str]]:
    now = time.time()
    return [
        [*GET_MEDIA, "--stream-name", "no-such-stream", "--start-selector", "StartSelectorType=EARLIEST", "{out}"],
        [*GET_MEDIA, "--stream-name", name, "--start-selector", "StartSelectorType=BOGUS", "{out}"],
        [*GET_MEDIA, "--stream-arn", "not-an-arn", "--start-selector", "StartSelectorType=NOW", "{out}"],
        [*GET_MEDIA_FOR_FRAGMENT_LIST, "--stream-name", "no-such-stream", "--fragments", UNKNOWN_FRAGMENT, "--",
         "{out}"],
        [*GET_CLIP, "--stream-name", "no-such-stream", "--clip-fragment-selector", clip_selector(now - 60, now),
         "{out}"],
        # A range before the stream existed holds no fragment.
        [*GET_CLIP, "--stream-name", name, "--clip-fragment-selector", clip_selector(now - 7200, now - 7100),
         "{out}"],
    ]


@pytest.mark.parametrize("case", range(6))
def test_service_errors_match_aws(stream, tmp_path, case):
    """The server refuses these (which exception is the server's business): both CLIs print the same error,
    exit non-zero (254 for openkvs) and create no outfile."""
    server, name = stream
    args = service_error_cases(name)[case]
    _, out_o = both(server, tmp_path, *args, expect_rc=254)
    assert not out_o.exists()


def test_endpoint_discovery_asks_for_each_media_api(stream, tmp_path):
    """Without --endpoint-url, openkvs asks GetDataEndpoint for GET_MEDIA / GET_MEDIA_FOR_FRAGMENT_LIST /
    GET_CLIP first (the AWS CLI needs the user to do it)."""
    server, name = stream
    env = client_env()
    env["OPENKVS_ENDPOINT_URL"] = server.endpoint
    now = time.time()
    for args, api in [
        ([*GET_MEDIA, "--stream-name", name, "--start-selector", "StartSelectorType=BOGUS"], "GET_MEDIA"),
        ([*GET_MEDIA_FOR_FRAGMENT_LIST, "--stream-name", name, "--fragments", UNKNOWN_FRAGMENT, "--"],
         "GET_MEDIA_FOR_FRAGMENT_LIST"),
        ([*GET_CLIP, "--stream-name", name, "--clip-fragment-selector", clip_selector(now - 7200, now - 7100)],
         "GET_CLIP"),
    ]:
        p = subprocess.run([openkvs_bin(), "--debug", *args, str(tmp_path / "x")], capture_output=True, text=True,
                           timeout=60, env=env)
        assert p.stderr.count("OperationModel(name=GetDataEndpoint)") == 1, p.stderr[-2000:]
        assert f'"APIName": "{api}"' in p.stderr
        assert p.returncode == 254, p.stderr[-2000:]


# -- successful calls: the same OUTFILE from both CLIs ------------------------------------------------------------


def listed_fragments(server, name: str) -> list[str]:
    """The stream's fragment numbers in ingest order."""
    fragments = server.am().list_fragments(StreamName=name, FragmentSelector={
        "FragmentSelectorType": "SERVER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": time.time() - 3600, "EndTimestamp": time.time() + 3600}})["Fragments"]
    return [f["FragmentNumber"] for f in sorted(fragments, key=lambda f: int(f["FragmentNumber"]))]


def cluster_frames(path) -> list[list[bytes]]:
    """Every cluster's frame bytes, in file order."""
    data = path.read_bytes() if hasattr(path, "read_bytes") else path
    parsed = mkv.parse(data)
    return [[frame for _, frame in mkv.frames_of(data, c)] for c in parsed.clusters]


@pytest.mark.parametrize("fmt", ["json", "text", "table"])
def test_get_media_for_fragment_list_matches_aws(stream, tmp_path, fmt):
    server, name = stream
    numbers = listed_fragments(server, name)
    assert len(numbers) == 4, numbers
    asked = [numbers[2], numbers[0], numbers[3]]
    out_a, out_o = both(server, tmp_path, "--output", fmt, *GET_MEDIA_FOR_FRAGMENT_LIST, "--stream-name", name,
                        "--fragments", *asked, "--", "{out}")
    assert out_o.read_bytes() == out_a.read_bytes()
    # And it is the asked fragments, in the order asked, frame for frame as ingested.
    ingested = cluster_frames(FIXTURES / "h264_aac.mkv")
    assert cluster_frames(out_o) == [ingested[2], ingested[0], ingested[3]]


def test_get_clip_matches_aws(stream, tmp_path):
    server, name = stream
    now = time.time()
    for fmt in ("json", "text"):
        out_a, out_o = both(server, tmp_path, "--output", fmt, *GET_CLIP, "--stream-name", name,
                            "--clip-fragment-selector", clip_selector(now - 3600, now - 1), "{out}")
        clip = out_o.read_bytes()
        assert clip == out_a.read_bytes()
        assert clip[4:8] == b"ftyp" and b"moov" in clip[:4096], clip[:64]


TAGS_ID = bytes.fromhex("1254C367")
MILLIS_BEHIND_NOW = "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW"


def get_media_documents(data: bytes) -> list[tuple[bytes, list[tuple[str, str]]]]:
    """Each document of a GetMedia payload as (its bytes up to the trailing Tags element, those tags with
    MILLIS_BEHIND_NOW masked): the one value that depends on when the response was made."""
    parsed = mkv.parse(data)
    starts = [s.ebml_offset for s in parsed.segments] + [len(data)]
    out = []
    for i, segment in enumerate(parsed.segments):
        start, end = starts[i], starts[i + 1]
        trailing = data.rfind(TAGS_ID, start, end)
        assert trailing > start, f"document {i} has no trailing Tags"
        names = segment.tags[-1][1]
        out.append((data[start:trailing], [(n, "*" if n == MILLIS_BEHIND_NOW else v) for n, v in names]))
    return out


@pytest.mark.parametrize("selector", ["StartSelectorType=EARLIEST", "StartSelectorType=FRAGMENT_NUMBER,"
                                                                    "AfterFragmentNumber={first}"])
def test_get_media_matches_aws(stream, tmp_path, selector):
    """A finished stream: the response ends once caught up (docs/wire.md#getmedia), for both CLIs."""
    server, name = stream
    numbers = listed_fragments(server, name)
    out_a, out_o = both(server, tmp_path, *GET_MEDIA, "--stream-name", name, "--start-selector",
                        selector.replace("{first}", numbers[0]), "{out}")
    ours, theirs = out_o.read_bytes(), out_a.read_bytes()
    assert get_media_documents(ours) == get_media_documents(theirs)
    expected = numbers if "EARLIEST" in selector else numbers[1:]
    ingested = cluster_frames(FIXTURES / "h264_aac.mkv")
    assert cluster_frames(ours) == ingested[len(ingested) - len(expected):]
    tags = [dict(t) for _, t in get_media_documents(ours)]
    assert [t["AWS_KINESISVIDEO_CONTINUATION_TOKEN"] for t in tags] == expected


EBML_ID = bytes.fromhex("1A45DFA3")


def complete_documents(data: bytes) -> bytes:
    """The payload up to the start of its last document (which an interrupted transfer may have cut)."""
    return data[:max(0, data.rfind(EBML_ID))]


def documents_in(path) -> int:
    """How many GetMedia documents have begun their trailing tags in the file so far."""
    return path.read_bytes().count(b"AWS_KINESISVIDEO_CONTINUATION_TOKEN") if path.exists() else 0


def test_ctrl_c_on_a_live_get_media_like_aws(media_server, tmp_path):
    """A GetMedia tailing a stream whose producer is still connected never ends by itself. Both CLIs are
    stopped with SIGINT once the fragments have reached openkvs's file: both exit 130 after printing a
    newline; openkvs's file holds every document that arrived, whole; the AWS CLI's (which writes in 32 KiB
    reads) holds a prefix of the same documents."""
    server = media_server
    name = unique_name()
    server.kv().create_stream(StreamName=name, DataRetentionInHours=24)
    src = mkv.Source(FIXTURES / "h264_aac.mkv")
    put = kvs.PutMedia(server.endpoint, name)
    procs = {}
    try:
        assert put.wait_status() == 200, put.describe()
        clusters = src.looped(1)
        assert put.send(src.header + b"".join(clusters)), put.describe()
        # The last cluster stays open until the next one begins: the first three are committed.
        assert put.wait_for(lambda acks: sum(a.get("EventType") == "PERSISTED" for a in acks) >= 3, 30), \
            put.describe()
        persisted = [a["FragmentNumber"] for a in put.acks if a.get("EventType") == "PERSISTED"]
        outs = {"aws": tmp_path / "aws.mkv", "openkvs": tmp_path / "openkvs.mkv"}
        for who, prog in (("aws", aws_cli()), ("openkvs", [openkvs_bin()])):
            procs[who] = subprocess.Popen(
                [*prog, "--endpoint-url", server.endpoint, *GET_MEDIA, "--stream-name", name, "--start-selector",
                 "StartSelectorType=EARLIEST", str(outs[who])],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=client_env())
        deadline = time.monotonic() + 30
        while documents_in(outs["openkvs"]) < len(persisted):
            assert time.monotonic() < deadline, "the archived fragments never reached openkvs's file"
            assert procs["openkvs"].poll() is None, procs["openkvs"].communicate()
            time.sleep(0.05)
        # Let the AWS CLI's reads catch up with what has been sent, then check nobody has ended.
        time.sleep(2)
        assert procs["aws"].poll() is None and procs["openkvs"].poll() is None
        results = {}
        for who, proc in procs.items():
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
            results[who] = (proc.returncode, out, normalize_err(err))
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        put.close()
    assert results["openkvs"] == (130, "\n", ""), results["openkvs"]
    assert results["aws"] == results["openkvs"], results
    ours, theirs = outs["openkvs"].read_bytes(), outs["aws"].read_bytes()
    docs = get_media_documents(ours)
    assert [dict(t)["AWS_KINESISVIDEO_CONTINUATION_TOKEN"] for _, t in docs] == persisted
    assert cluster_frames(ours) == cluster_frames(FIXTURES / "h264_aac.mkv")[:len(persisted)]
    theirs_docs = get_media_documents(complete_documents(theirs))
    assert len(theirs_docs) >= 1, len(theirs)
    assert theirs_docs == docs[:len(theirs_docs)]
