"""`openkvs <service> <operation>` against the real AWS CLI (v1): same server, same request, same stdout.

Error text is compared after dropping v1's "Note: AWS CLI version 2…" banner and mapping the program name
(`aws` → `openkvs`); exit codes follow AWS CLI v2's documentation (252 usage/parameters, 253 configuration,
254 service errors, 255 otherwise), which v1 does not use, so they are checked against fixed values. yaml and
yaml-stream output, auto-prompt and --generate-cli-skeleton yaml-input are v2-only: fixed expectations.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time

import pytest

from conftest import FIXTURES, REGION, aws_cli, client_env, openkvs_bin, unique_name

GET_HLS = ["kinesis-video-archived-media", "get-hls-streaming-session-url"]
GET_DASH = ["kinesis-video-archived-media", "get-dash-streaming-session-url"]
LIST_FRAGMENTS = ["kinesis-video-archived-media", "list-fragments"]
TOKEN_RE = re.compile(r"SessionToken=[A-Za-z0-9_~-]+")


def run(prog: list[str], server, *args, env_extra: dict | None = None, endpoint: bool = True, stdin=None):
    env = client_env()
    env["AWS_MAX_ATTEMPTS"] = "1"
    for k, v in (env_extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    cmd = [*prog, *(["--endpoint-url", server.endpoint] if endpoint else []), *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, input=stdin)
    return p.returncode, p.stdout, p.stderr


def ours(server, *args, **kw):
    return run([openkvs_bin()], server, *args, **kw)


def theirs(server, *args, **kw):
    return run(aws_cli(), server, *args, **kw)


def normalize_err(text: str) -> str:
    text = re.sub(r"usage:\s*Note: AWS CLI version 2[^\n]*\n\n", "", text)
    text = text.strip("\n")
    text = re.sub(r"\baws\b", "openkvs", text)
    return text


def same(server, *args, expect_rc: int = 0, mask_tokens: bool = False, **kw):
    """Runs both CLIs; asserts equal stdout and equal (normalised) stderr; returns our stdout."""
    rc_a, out_a, err_a = theirs(server, *args, **kw)
    rc_o, out_o, err_o = ours(server, *args, **kw)
    if mask_tokens:
        out_a, out_o = TOKEN_RE.sub("SessionToken=T", out_a), TOKEN_RE.sub("SessionToken=T", out_o)
    assert out_o == out_a, f"stdout differs for {args}:\n--- aws\n{out_a}\n--- openkvs\n{out_o}\n{err_o}"
    assert normalize_err(err_o) == normalize_err(err_a), f"stderr differs for {args}:\n--- aws\n{err_a}\n--- openkvs\n{err_o}"
    assert rc_o == expect_rc, (rc_o, err_o)
    assert (rc_a == 0) == (rc_o == 0), (rc_a, rc_o)
    return out_o


@pytest.fixture(scope="module")
def cam(server_module):
    """A stream with four fragments of the h264+aac fixture; returns (server, name, selector shorthand)."""
    server = server_module
    name = unique_name()
    rc, _, err = ours(server, "kinesisvideo", "create-stream", "--stream-name", name, "--data-retention-in-hours", "24",
                      "--tags", "team=video,site=lab")
    assert rc == 0, err
    rc, _, err = server.put_media(name, FIXTURES / "h264_aac.mkv", "--fast")
    assert rc == 0, err
    start, end = int(time.time()) - 3600, int(time.time()) + 3600
    selector = f"FragmentSelectorType=SERVER_TIMESTAMP,TimestampRange={{StartTimestamp={start},EndTimestamp={end}}}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rc, out, _ = ours(server, *LIST_FRAGMENTS, "--stream-name", name, "--fragment-selector", selector,
                          "--query", "length(Fragments)")
        if rc == 0 and out.strip() not in ("", "0"):
            break
        time.sleep(0.2)
    return server, name, selector


@pytest.fixture(scope="module")
def server_module(tmp_path_factory):
    from conftest import Server
    s = Server(tmp_path_factory.mktemp("cli")).start()
    yield s
    s.stop()


CONTROL_COMMANDS = [
    ("kinesisvideo", "describe-stream", "--stream-name", "{name}"),
    ("kinesisvideo", "list-streams"),
    ("kinesisvideo", "list-tags-for-stream", "--stream-name", "{name}"),
    ("kinesisvideo", "get-data-endpoint", "--stream-name", "{name}", "--api-name", "GET_HLS_STREAMING_SESSION_URL"),
    (*LIST_FRAGMENTS, "--stream-name", "{name}", "--fragment-selector", "{selector}"),
]


@pytest.mark.parametrize("fmt", ["json", "text", "table"])
@pytest.mark.parametrize("command", CONTROL_COMMANDS, ids=lambda c: c[1])
def test_output_formats_match_aws(cam, fmt, command):
    server, name, selector = cam
    args = [a.format(name=name, selector=selector) for a in command]
    same(server, "--output", fmt, *args)


QUERIES = [
    ("kinesisvideo", "list-streams", "StreamInfoList[].StreamName"),
    ("kinesisvideo", "list-streams", "StreamInfoList[?DataRetentionInHours > `1`].{N: StreamName, R: DataRetentionInHours}"),
    ("kinesisvideo", "list-streams", "length(StreamInfoList)"),
    ("kinesisvideo", "describe-stream", "StreamInfo.[StreamName, Status, DataRetentionInHours]"),
    ("kinesisvideo", "describe-stream", "StreamInfo"),
    ("kinesisvideo", "list-tags-for-stream", "Tags.team"),
    ("kinesisvideo", "list-tags-for-stream", "keys(Tags)"),
    ("kinesis-video-archived-media", "list-fragments", "sort_by(Fragments, &FragmentNumber)[].FragmentNumber"),
    ("kinesis-video-archived-media", "list-fragments", "Fragments[0].keys(@)"),
    ("kinesis-video-archived-media", "list-fragments", "sum(Fragments[].FragmentSizeInBytes)"),
    ("kinesis-video-archived-media", "list-fragments", "max_by(Fragments, &FragmentSizeInBytes).FragmentLengthInMilliseconds"),
    ("kinesis-video-archived-media", "list-fragments", "Fragments[?FragmentSizeInBytes > `0`] | length(@)"),
    ("kinesisvideo", "describe-stream", "nothing"),
]


@pytest.mark.parametrize("fmt", ["json", "text", "table"])
@pytest.mark.parametrize("service,op,query", QUERIES, ids=lambda q: str(q)[:40])
def test_queries_match_aws(cam, fmt, service, op, query):
    server, name, selector = cam
    args = [service, op]
    if op != "list-streams":
        args += ["--stream-name", name]
    if op == "list-fragments":
        args += ["--fragment-selector", selector]
    same(server, "--output", fmt, *args, "--query", query)


def test_pagination_matches_aws(cam):
    server, name, selector = cam
    base = [*LIST_FRAGMENTS, "--stream-name", name, "--fragment-selector", selector]
    for fmt in ("json", "text"):
        same(server, "--output", fmt, *base, "--page-size", "1", "--query", "sort(Fragments[].FragmentNumber)")
        same(server, "--output", fmt, *base, "--max-items", "2", "--page-size", "3")
        same(server, "--output", fmt, *base, "--max-items", "1", "--page-size", "1")
        same(server, "--output", fmt, *base, "--max-results", "1", "--query", "length(Fragments)")
        same(server, "--output", fmt, *base, "--no-paginate", "--max-results", "1", "--query", "length(Fragments)")
    # The resume token is botocore's, and both CLIs resume from each other's.
    _, out, _ = theirs(server, *base, "--max-items", "1", "--page-size", "3", "--output", "json")
    token = json.loads(out)["NextToken"]
    assert json.loads(base64.b64decode(token))["boto_truncate_amount"] == 1
    same(server, *base, "--starting-token", token, "--query", "length(Fragments)")
    for i in range(3):
        name_i = f"{name}-p{i}"
        assert ours(server, "kinesisvideo", "create-stream", "--stream-name", name_i)[0] == 0
    same(server, "kinesisvideo", "list-streams", "--max-items", "2", "--query", "length(StreamInfoList)")
    same(server, "kinesisvideo", "list-streams", "--page-size", "1", "--query", "length(StreamInfoList)")


ERRORS = [
    (254, "kinesisvideo", "describe-stream", "--stream-name", "no-such-stream"),
    (254, *GET_HLS, "--stream-name", "no-such-stream"),
    (254, *GET_HLS, "--stream-name", "{name}", "--playback-mode", "ON_DEMAND"),
    (254, *GET_HLS, "--stream-name", "{name}", "--playback-mode", "BOGUS"),
    (254, "kinesisvideo", "delete-stream", "--stream-arn", "not-an-arn"),
    (252, "kinesisvideo", "delete-stream"),
    (252, "kinesisvideo", "describe-stream", "--stream-name", "{name}", "--bogus", "x"),
    (252, "kinesisvideo", "create-stream", "--stream-name", ""),
    (252, *GET_HLS, "--stream-name", "{name}", "--expires", "5"),
    (252, *GET_HLS, "--stream-name", "{name}", "--hls-fragment-selector", "FragmentSelectorType=SERVER_TIMESTAMP,Bogus=1"),
    (254, *GET_HLS, "--stream-name", "{name}", "--hls-fragment-selector", "TimestampRange={EndTimestamp=1704067200}"),
    (252, *GET_HLS, "--stream-name", "{name}", "--hls-fragment-selector", "{\"FragmentSelectorType\": }"),
    (252, *GET_HLS, "--stream-name", "{name}", "--hls-fragment-selector",
     "TimestampRange={StartTimestamp=yesterday}"),
    (254, *GET_DASH, "--stream-name", "no-such-stream"),
    (254, *GET_DASH, "--stream-name", "{name}", "--playback-mode", "ON_DEMAND"),
    (252, *GET_DASH, "--stream-name", "{name}", "--expires", "5"),
    (252, *GET_DASH, "--stream-name", "{name}", "--max-manifest-fragment-results", "0"),
    (252, *GET_DASH, "--stream-name", "{name}", "--dash-fragment-selector", "FragmentSelectorType=SERVER_TIMESTAMP,Bogus=1"),
    (254, *GET_DASH, "--stream-name", "{name}", "--dash-fragment-selector", "TimestampRange={EndTimestamp=1704067200}"),
    (252, "kinesisvideo", "create-stream", "--stream-name", "x", "--data-retention-in-hours", "abc"),
    (252, "kinesisvideo", "update-data-retention", "--stream-name", "{name}"),
    (252, "kinesisvideo", "tag-stream", "--stream-name", "{name}", "--tags", "{\"a\": 1}"),
]


@pytest.mark.parametrize("case", ERRORS, ids=lambda c: " ".join(c[2:4]))
def test_errors_match_aws(cam, case):
    server, name, _ = cam
    rc, *args = case
    same(server, *[a.format(name=name) if "{name}" in a else a for a in args], expect_rc=rc)


def test_connection_error_is_255(cam):
    server, _, _ = cam
    env = client_env()
    env["AWS_MAX_ATTEMPTS"] = "1"
    args = ["--endpoint-url", "http://127.0.0.1:9", "kinesisvideo", "list-streams"]
    a = subprocess.run([*aws_cli(), *args], capture_output=True, text=True, env=env)
    o = subprocess.run([openkvs_bin(), *args], capture_output=True, text=True, env=env)
    assert o.returncode == 255 and a.returncode == 255
    assert normalize_err(o.stderr) == normalize_err(a.stderr)


def test_write_commands_match_aws(cam):
    server, _, _ = cam
    for prog in (theirs, ours):
        name = unique_name()
        rc, out, err = prog(server, "kinesisvideo", "create-stream", "--stream-name", name, "--data-retention-in-hours",
                            "1", "--media-type", "video/h264", "--tags", "a=b,c=d")
        assert rc == 0, err
        arn = json.loads(out)["StreamARN"]
        _, out, _ = prog(server, "kinesisvideo", "describe-stream", "--stream-name", name, "--query", "StreamInfo.Version",
                         "--output", "text")
        version = out.strip()
        rc, out, err = prog(server, "kinesisvideo", "update-data-retention", "--stream-name", name, "--current-version",
                            version, "--operation", "INCREASE_DATA_RETENTION", "--data-retention-change-in-hours", "5")
        assert (rc, out) == (0, ""), err
        rc, out, err = prog(server, "kinesisvideo", "tag-stream", "--stream-arn", arn, "--tags", '{"x": "y"}')
        assert (rc, out) == (0, ""), err
        same(server, "kinesisvideo", "list-tags-for-stream", "--stream-arn", arn)
        same(server, "kinesisvideo", "describe-stream", "--stream-arn", arn, "--query", "StreamInfo.DataRetentionInHours")
        rc, out, err = prog(server, "kinesisvideo", "delete-stream", "--stream-arn", arn)
        assert (rc, out) == (0, ""), err


def test_get_hls_session_url_matches_aws(cam):
    server, name, selector = cam
    end = int(time.time()) - 1
    past = selector.replace(re.search(r"EndTimestamp=(\d+)", selector).group(1), str(end))
    iso_start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    variants = [
        ["--playback-mode", "ON_DEMAND", "--hls-fragment-selector", past],
        ["--playback-mode", "ON_DEMAND", "--hls-fragment-selector",
         json.dumps({"FragmentSelectorType": "SERVER_TIMESTAMP",
                     "TimestampRange": {"StartTimestamp": iso_start, "EndTimestamp": end}}),
         "--container-format", "FRAGMENTED_MP4", "--discontinuity-mode", "ON_DISCONTINUITY",
         "--display-fragment-timestamp", "ALWAYS", "--expires", "600", "--max-media-playlist-fragment-results", "10"],
        ["--playback-mode", "LIVE_REPLAY", "--hls-fragment-selector",
         f"FragmentSelectorType=SERVER_TIMESTAMP,TimestampRange={{StartTimestamp={iso_start}}}"],
    ]
    for extra in variants:
        for fmt in ("json", "text", "table", ):
            out = same(server, "--output", fmt, *GET_HLS, "--stream-name", name, *extra, mask_tokens=True)
            assert "getHLSMasterPlaylist.m3u8?SessionToken=" in out
    # The URL plays: the master playlist it names is served.
    rc, out, _ = ours(server, *GET_HLS, "--stream-name", name, *variants[0], "--output", "text")
    import urllib.request
    with urllib.request.urlopen(out.strip(), timeout=10) as r:
        assert r.read().startswith(b"#EXTM3U")
    # --stream-arn as well as --stream-name.
    _, arn, _ = ours(server, "kinesisvideo", "describe-stream", "--stream-name", name, "--query", "StreamInfo.StreamARN",
                     "--output", "text")
    same(server, *GET_HLS, "--stream-arn", arn.strip(), *variants[0], "--query", "length(HLSStreamingSessionURL) > `10`")


def test_get_dash_session_url_matches_aws(cam):
    """get-dash-streaming-session-url: the same output as the AWS CLI's in every format (tokens masked), with
    every member set; the URL it prints serves the MPD."""
    server, name, selector = cam
    end = int(time.time()) - 1
    past = selector.replace(re.search(r"EndTimestamp=(\d+)", selector).group(1), str(end))
    iso_start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    variants = [
        ["--playback-mode", "ON_DEMAND", "--dash-fragment-selector", past],
        ["--playback-mode", "ON_DEMAND", "--dash-fragment-selector",
         json.dumps({"FragmentSelectorType": "SERVER_TIMESTAMP",
                     "TimestampRange": {"StartTimestamp": iso_start, "EndTimestamp": end}}),
         "--display-fragment-timestamp", "ALWAYS", "--display-fragment-number", "ALWAYS", "--expires", "600",
         "--max-manifest-fragment-results", "10"],
        ["--playback-mode", "LIVE_REPLAY", "--dash-fragment-selector",
         f"FragmentSelectorType=SERVER_TIMESTAMP,TimestampRange={{StartTimestamp={iso_start}}}"],
    ]
    for extra in variants:
        for fmt in ("json", "text", "table"):
            out = same(server, "--output", fmt, *GET_DASH, "--stream-name", name, *extra, mask_tokens=True)
            assert "/dash/v1/getDASHManifest.mpd?SessionToken=" in out
    rc, out, _ = ours(server, *GET_DASH, "--stream-name", name, *variants[1], "--output", "text")
    import urllib.request
    with urllib.request.urlopen(out.strip(), timeout=10) as r:
        assert r.headers["Content-Type"] == "application/dash+xml"
        assert b"kvs:fn=" in r.read()


def debug_body(stderr: str, operation: str) -> dict:
    """The JSON request body botocore (or openkvs) logs with --debug for one operation."""
    for line in stderr.splitlines():
        if f"OperationModel(name={operation})" in line and "'body': " in line:
            m = re.search(r"'body': b?'(.*?)'(, 'url'|\}$|, 'context')", line) or re.search(r"'body': (\{.*\})\}$", line)
            if m:
                return json.loads(m.group(1))
    raise AssertionError(f"no request body for {operation} in:\n{stderr[-3000:]}")


SENT_VARIANTS = [
    ["--hls-fragment-selector", "FragmentSelectorType=PRODUCER_TIMESTAMP,TimestampRange={StartTimestamp=2024-01-01T00:00:00.9Z,EndTimestamp=1704067300.7}"],
    ["--hls-fragment-selector", '{"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": {"StartTimestamp": "2024-01-01 01:00:00+01:00"}}'],
    ["--playback-mode", "LIVE", "--container-format", "FRAGMENTED_MP4", "--discontinuity-mode", "NEVER",
     "--display-fragment-timestamp", "NEVER", "--expires", "43200", "--max-media-playlist-fragment-results", "5000"],
    ["--cli-input-json", '{"PlaybackMode": "ON_DEMAND", "Expires": 900, "StreamName": "ignored"}', "--expires", "301"],
    ["--cli-input-yaml", "PlaybackMode: LIVE_REPLAY\nHLSFragmentSelector:\n  FragmentSelectorType: SERVER_TIMESTAMP\n"
                         "  TimestampRange:\n    StartTimestamp: 1704067200\n"],
]


@pytest.mark.parametrize("extra", SENT_VARIANTS, ids=range(len(SENT_VARIANTS)))
def test_request_body_matches_botocore(cam, extra):
    """What we send for each input form equals what botocore logs sending (same keys, order and values)."""
    server, name, _ = cam
    args = [*GET_HLS, "--stream-name", name, *extra, "--debug"]
    if "--cli-input-yaml" in extra:
        # v1 has no --cli-input-yaml: the same document as JSON is the reference.
        ref = [*GET_HLS, "--stream-name", name, "--cli-input-json", json.dumps({
            "PlaybackMode": "LIVE_REPLAY",
            "HLSFragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP",
                                    "TimestampRange": {"StartTimestamp": 1704067200}}}), "--debug"]
    else:
        ref = args
    _, _, err_a = theirs(server, *ref)
    _, _, err_o = ours(server, *args)
    body_a = debug_body(err_a, "GetHLSStreamingSessionURL")
    body_o = debug_body(err_o, "GetHLSStreamingSessionURL")
    assert list(body_o.items()) == list(body_a.items())
    assert json.dumps(body_o) == json.dumps(body_a)


def test_debug_has_no_secrets(cam):
    server, name, _ = cam
    env = {"AWS_SESSION_TOKEN": "SESSIONTOKENSECRET"}
    _, _, err = ours(server, "kinesisvideo", "describe-stream", "--stream-name", name, "--debug", env_extra=env)
    assert "Making request for OperationModel(name=DescribeStream)" in err
    from conftest import SECRET_KEY
    assert SECRET_KEY not in err and "SESSIONTOKENSECRET" not in err
    assert "Signature=<redacted>" in err


def test_skeletons_match_aws(cam):
    server, _, _ = cam
    for service, op in [("kinesisvideo", "create-stream"), ("kinesisvideo", "list-streams"), tuple(GET_HLS),
                        tuple(LIST_FRAGMENTS), ("kinesisvideo", "update-data-retention")]:
        kinds = ([], ["input"], ["output"]) if op not in ("create-stream", "update-data-retention") else ([], ["input"])
        for kind in kinds:
            _, out_a, _ = theirs(server, service, op, "--generate-cli-skeleton", *kind, endpoint=False)
            rc, out_o, err = ours(server, service, op, "--generate-cli-skeleton", *kind, endpoint=False)
            assert rc == 0, err
            a, o = json.loads(out_a), json.loads(out_o)
            # botocore picks enum values at random for input skeletons: compare shapes and non-enum values.
            assert skeleton_shape(o) == skeleton_shape(a), (op, kind)
            if kind == ["output"]:
                assert out_o == out_a
    # "output" still wants the required arguments (only input skeletons waive them).
    same(server, "kinesisvideo", "create-stream", "--generate-cli-skeleton", "output", expect_rc=252, endpoint=False)
    same(server, "kinesisvideo", "create-stream", "--stream-name", "x", "--generate-cli-skeleton", "output",
         endpoint=False)
    rc, out, _ = ours(server, *GET_HLS, "--generate-cli-skeleton", "yaml-input", endpoint=False)
    assert rc == 0
    assert "PlaybackMode: LIVE  # Valid values are: LIVE, LIVE_REPLAY, ON_DEMAND." in out
    # The YAML skeleton reads back as the JSON skeleton's document.
    import yaml
    _, out_json, _ = ours(server, *GET_HLS, "--generate-cli-skeleton", endpoint=False)
    assert yaml.safe_load(out) == json.loads(out_json)


def skeleton_shape(v):
    if isinstance(v, dict):
        return [(k, skeleton_shape(x)) for k, x in v.items()]
    if isinstance(v, list):
        return [skeleton_shape(x) for x in v]
    return type(v).__name__


def test_cli_input_json_and_overrides(cam):
    server, name, _ = cam
    doc = json.dumps({"StreamName": name})
    same(server, "kinesisvideo", "describe-stream", "--cli-input-json", doc, "--query", "StreamInfo.StreamName")
    same(server, "kinesisvideo", "describe-stream", "--cli-input-json", json.dumps({"StreamName": "nope"}),
         "--stream-name", name, "--query", "StreamInfo.StreamName")
    same(server, "kinesisvideo", "describe-stream", "--cli-input-json", '{"StreamName": ', expect_rc=252)
    rc, out, _ = ours(server, "kinesisvideo", "describe-stream", "--cli-input-yaml", f"StreamName: {name}",
                      "--query", "StreamInfo.StreamName", "--output", "text")
    assert (rc, out) == (0, f"{name}\n")
    rc, _, err = ours(server, "kinesisvideo", "describe-stream", "--cli-input-yaml", "StreamName: a",
                      "--cli-input-json", "{}")
    assert rc == 252 and "not allowed with argument --cli-input-json" in err


def test_yaml_outputs(cam):
    """v2-only formats: fixed expectations (ruamel safe dump: sorted keys, sequences not indented)."""
    server, name, _ = cam
    rc, out, _ = ours(server, "--output", "yaml", "kinesisvideo", "list-tags-for-stream", "--stream-name", name)
    assert (rc, out) == (0, "Tags:\n  site: lab\n  team: video\n")
    rc, out, _ = ours(server, "--output", "yaml", "kinesisvideo", "list-streams", "--query",
                      f"StreamInfoList[?StreamName=='{name}'].{{Name: StreamName, Hours: DataRetentionInHours}}")
    assert (rc, out) == (0, f"- Hours: 24\n  Name: {name}\n")
    rc, out, _ = ours(server, "--output", "yaml-stream", "kinesisvideo", "list-tags-for-stream", "--stream-name", name)
    assert (rc, out) == (0, "- Tags:\n    site: lab\n    team: video\n")
    rc, out, _ = ours(server, "--output", "yaml", "kinesisvideo", "describe-stream", "--stream-name", name, "--query",
                      "StreamInfo.DataRetentionInHours")
    assert (rc, out) == (0, "24\n...\n")


def test_timestamps_iso8601_like_aws(cam, tmp_path):
    server, name, selector = cam
    config = tmp_path / "config"
    config.write_text(f"[default]\nregion = {REGION}\ncli_timestamp_format = iso8601\n")
    same(server, "kinesisvideo", "describe-stream", "--stream-name", name, "--query", "StreamInfo.CreationTime",
         env_extra={"AWS_CONFIG_FILE": str(config)})
    same(server, *LIST_FRAGMENTS, "--stream-name", name, "--fragment-selector", selector, "--output", "text",
         env_extra={"AWS_CONFIG_FILE": str(config)})


def test_profiles_and_config_like_aws(cam, tmp_path):
    server, name, _ = cam
    from conftest import ACCESS_KEY, SECRET_KEY
    creds = tmp_path / "credentials"
    creds.write_text(f"[cam]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    config = tmp_path / "config"
    config.write_text(f"[profile cam]\nregion = {REGION}\noutput = text\n")
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_CONFIG_FILE": str(config),
           "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_DEFAULT_REGION": None, "AWS_REGION": None}
    same(server, "--profile", "cam", "kinesisvideo", "describe-stream", "--stream-name", name, env_extra=env)
    same(server, "kinesisvideo", "describe-stream", "--stream-name", name, env_extra={**env, "AWS_PROFILE": "cam"})
    # No region anywhere; no credentials; an unknown profile: configuration errors (253 in v2).
    rc, _, err = ours(server, "kinesisvideo", "list-streams", env_extra=env)
    assert rc == 253 and "You must specify a region." in err
    rc, _, err = ours(server, "--region", REGION, "kinesisvideo", "list-streams", env_extra=env)
    assert rc == 253 and "Unable to locate credentials." in err
    rc, _, err = ours(server, "--profile", "ghost", "kinesisvideo", "list-streams", env_extra=env)
    assert rc == 253 and "The config profile (ghost) could not be found" in err
    # --no-sign-request: no credentials needed (the server then answers as to an anonymous caller).
    rc, _, err = ours(server, "--region", REGION, "--no-sign-request", "kinesisvideo", "list-streams", env_extra=env)
    _, _, err_a = theirs(server, "--region", REGION, "--no-sign-request", "kinesisvideo", "list-streams", env_extra=env)
    assert normalize_err(err) == normalize_err(err_a)


def test_endpoint_discovery_calls_get_data_endpoint_once(cam):
    """Without --endpoint-url, archived-media commands ask GetDataEndpoint (cached: once per process)."""
    server, name, selector = cam
    env = {"OPENKVS_ENDPOINT_URL": server.endpoint}
    rc, out, err = ours(server, *LIST_FRAGMENTS, "--stream-name", name, "--fragment-selector", selector,
                        "--page-size", "1", "--debug", "--query", "length(Fragments)", endpoint=False, env_extra=env)
    assert rc == 0, err
    assert int(out) >= 2
    assert err.count("OperationModel(name=GetDataEndpoint)") == 1
    assert '"APIName": "LIST_FRAGMENTS"' in err
    assert err.count("OperationModel(name=ListFragments)") == int(out)
    rc, out, err = ours(server, *GET_HLS, "--stream-name", name, "--debug", endpoint=False, env_extra=env)
    assert '"APIName": "GET_HLS_STREAMING_SESSION_URL"' in err
    # With --endpoint-url the AWS CLI's behaviour: no discovery.
    _, _, err = ours(server, *GET_HLS, "--stream-name", name, "--debug")
    assert "GetDataEndpoint" not in err


def test_version_and_global_option_errors(cam):
    server, _, _ = cam
    rc, out, _ = ours(server, "--version", endpoint=False)
    assert rc == 0 and out.startswith("openkvs")
    rc, _, err = ours(server, "--output", "xml", "kinesisvideo", "list-streams")
    assert rc == 252 and "--output" in err
    rc, _, err = ours(server, "kinesisvideo", "list-streams", "--query", "StreamInfoList[")
    assert rc == 252 and "--query" in err
    rc, _, err = ours(server, "kinesisvideo", "no-such-op")
    assert rc == 252 and "Invalid choice" in err
    # Options accepted for compatibility.
    rc, out, err = ours(server, "--no-verify-ssl", "--no-cli-pager", "--color", "off", "--cli-read-timeout", "5",
                        "--cli-connect-timeout", "5", "--cli-binary-format", "base64", "--no-cli-auto-prompt",
                        "kinesisvideo", "list-streams", "--query", "`1`")
    assert (rc, out) == (0, "1\n"), err


def test_table_color_on(cam):
    server, name, _ = cam
    rc, out, _ = ours(server, "--color", "on", "--output", "table", "kinesisvideo", "list-tags-for-stream",
                      "--stream-name", name)
    assert rc == 0 and "\x1b[1m\x1b[34mlab\x1b[0m" in out and "\x1b[2m\x1b[33m|\x1b[0m" in out
