"""GetHLSStreamingSessionURL end to end: the real AWS CLI with every flag set, boto3, and every
error of docs/wire.md#gethlsstreamingsessionurl checked through the client's parsed error code; then what the session URL's
token grants on the GET side (tampered, expired, deleted-stream and other-stream tokens are refused).

Streams with unsupported or damaged codec private data are made from tests/fixtures/h264_aac.mkv by
rewriting its Tracks element (same clusters)."""

from __future__ import annotations

import struct
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

import kvs
import mkv
from conftest import FIXTURES

H264_AAC = FIXTURES / "h264_aac.mkv"
H265 = FIXTURES / "h265.mkv"


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


def raw_am(server):
    """An archived-media client without botocore's client-side checks (min values), so the server's are tested."""
    from botocore.config import Config
    import boto3
    from conftest import ACCESS_KEY, REGION, SECRET_KEY
    return boto3.session.Session().client(
        "kinesis-video-archived-media", endpoint_url=server.endpoint, region_name=REGION,
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        config=Config(parameter_validation=False, retries={"max_attempts": 1, "mode": "standard"}))


def error_code(call) -> str:
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"]


def cli_error(result) -> str:
    rc, _, err = result
    assert rc != 0, err
    assert "An error occurred (" in err, err
    return err.split("An error occurred (", 1)[1].split(")", 1)[0]


def get(url: str):
    """GET url → (status, headers with lowercase names, body), 4xx/5xx included."""
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


# -- streams ---------------------------------------------------------------------------------------


def tracks_element(tracks: list[mkv.Track]) -> bytes:
    entries = b""
    for t in tracks:
        body = (mkv.uint_element(mkv.TRACKNUMBER, t.number) + mkv.uint_element(mkv.TRACKUID, t.number)
                + mkv.uint_element(mkv.TRACKTYPE, t.type) + mkv.element(mkv.CODECID, t.codec_id.encode()))
        if t.codec_private:
            body += mkv.element(mkv.CODECPRIVATE, t.codec_private)
        if t.type == 1 and t.width:
            body += mkv.element(mkv.VIDEO, mkv.uint_element(mkv.PIXELWIDTH, t.width)
                                + mkv.uint_element(mkv.PIXELHEIGHT, t.height))
        if t.type == 2 and t.sampling_frequency:
            body += mkv.element(mkv.AUDIO, mkv.element(mkv.SAMPLINGFREQUENCY, struct.pack(">d", t.sampling_frequency))
                                + mkv.uint_element(mkv.CHANNELS, t.channels or 2))
        entries += mkv.element(mkv.TRACKENTRY, body)
    return mkv.element(mkv.TRACKS, entries)


def body_with_tracks(path: Path, change) -> bytes:
    """The fixture with its Tracks element rebuilt after `change(tracks)`; clusters re-emitted."""
    src = mkv.Source(path)
    header = src.header
    tracks = [mkv.Track(**vars(t)) for t in sorted(src.mkv.segments[0].tracks.values(), key=lambda t: t.number)]
    change(tracks)
    seg = src.mkv.segments[0]
    at = seg.data_start - seg.ebml_offset  # walk the Segment's children to the Tracks element
    while True:
        eid, p = mkv.read_id(header, at)
        size, p = mkv.read_size(header, p)
        if eid == mkv.TRACKS:
            break
        at = p + size
    header = header[:at] + tracks_element(tracks) + header[p + size:]
    return header + b"".join(src.emit_cluster(i) for i in range(len(src.clusters)))


def ingest(server, body: bytes, retention: int = 24) -> tuple[str, str, float, float]:
    """A new stream with `body` ingested; (name, arn, t0, t1) with every fragment's server time in [t0, t1]."""
    name, arn = server.create_stream(retention=retention)
    t0 = time.time() - 1
    pm = kvs.put_media_body(server.endpoint, name, body)
    assert pm.status == 200 and not pm.errors and pm.events("RECEIVED"), pm.describe()
    if retention:
        kvs.wait_fragments(server.am(), name, 1)
    time.sleep(1.1)  # End must be in the past (server time) and after the last fragment's start
    return name, arn, t0, time.time()


def on_demand(name: str, t0: float, t1: float, **kw) -> dict:
    args = {"StreamName": name, "PlaybackMode": "ON_DEMAND",
            "HLSFragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP",
                                    "TimestampRange": {"StartTimestamp": ts(t0), "EndTimestamp": ts(t1)}}}
    args.update(kw)
    return args


@pytest.fixture(scope="module")
def good(server):
    return ingest(server, H264_AAC.read_bytes())


# -- the AWS CLI, every flag set -------------------------------------------------------------------


def test_cli_with_the_seed_flags(server, good):
    name, _, t0, t1 = good
    rc, out, err = server.aws(
        "kinesis-video-archived-media", "get-hls-streaming-session-url",
        "--stream-name", name, "--playback-mode", "ON_DEMAND",
        "--hls-fragment-selector",
        f"FragmentSelectorType=SERVER_TIMESTAMP,TimestampRange={{StartTimestamp={iso(t0)},EndTimestamp={iso(t1)}}}",
        "--container-format", "FRAGMENTED_MP4", "--discontinuity-mode", "ALWAYS",
        "--display-fragment-timestamp", "ALWAYS", "--expires", "300",
        "--max-media-playlist-fragment-results", "1000")
    assert rc == 0, err
    url = out["HLSStreamingSessionURL"]
    prefix = f"{server.endpoint}/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken="
    assert url.startswith(prefix), url
    token = url[len(prefix):]
    assert token.endswith("~") and all(c.isalnum() or c in "-_" for c in token[:-1]), token
    assert 60 <= len(token) <= 200, token


def test_data_endpoint_is_the_public_url(server, good):
    name = good[0]
    ep = server.kv().get_data_endpoint(StreamName=name, APIName="GET_HLS_STREAMING_SESSION_URL")["DataEndpoint"]
    assert ep == server.endpoint


def test_boto3_defaults_and_every_mode(server):
    # LIVE needs a fragment of the last 30 s: ingest fresh.
    name, arn, t0, t1 = ingest(server, H264_AAC.read_bytes())
    am = server.am()
    for args in (
        {"StreamName": name},
        {"StreamARN": arn, "PlaybackMode": "LIVE",
         "HLSFragmentSelector": {"FragmentSelectorType": "PRODUCER_TIMESTAMP"}},
        {"StreamName": name, "PlaybackMode": "LIVE_REPLAY",
         "HLSFragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP",
                                 "TimestampRange": {"StartTimestamp": ts(t0)}}},
        on_demand(name, t0, t1, DiscontinuityMode="ON_DISCONTINUITY", MaxMediaPlaylistFragmentResults=5000,
                  Expires=43200),
    ):
        url = am.get_hls_streaming_session_url(**args)["HLSStreamingSessionURL"]
        assert "/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=" in url


# -- every error of docs/wire.md#gethlsstreamingsessionurl -----------------------------------------


def test_unknown_stream_cli(server):
    now = time.time()
    r = server.aws("kinesis-video-archived-media", "get-hls-streaming-session-url",
                   "--stream-name", "no-such-stream", "--playback-mode", "ON_DEMAND",
                   "--hls-fragment-selector",
                   f"FragmentSelectorType=SERVER_TIMESTAMP,TimestampRange={{StartTimestamp={iso(now - 60)},"
                   f"EndTimestamp={iso(now - 1)}}}")
    assert cli_error(r) == "ResourceNotFoundException"


def test_no_data_retention(server):
    name, _, t0, t1 = ingest(server, H264_AAC.read_bytes(), retention=0)
    assert error_code(lambda: server.am().get_hls_streaming_session_url(**on_demand(name, t0, t1))) \
        == "NoDataRetentionException"


def test_no_fragment_in_range_and_live_without_recent_fragments(server, good):
    name, _, t0, _ = good
    am = server.am()
    assert error_code(lambda: am.get_hls_streaming_session_url(**on_demand(name, t0 - 7200, t0 - 3600))) \
        == "ResourceNotFoundException"
    empty, _ = server.create_stream()
    assert error_code(lambda: am.get_hls_streaming_session_url(StreamName=empty)) == "ResourceNotFoundException"
    rc = server.aws("kinesis-video-archived-media", "get-hls-streaming-session-url",
                    "--stream-name", empty, "--playback-mode", "LIVE")
    assert cli_error(rc) == "ResourceNotFoundException"


def _set(number: int, **fields):
    def change(tracks):
        for t in tracks:
            if t.number == number:
                for k, v in fields.items():
                    setattr(t, k, v)
    return change


@pytest.mark.parametrize("change, code", [
    (_set(1, codec_id="V_MPEG4/ISO/XYZ"), "UnsupportedStreamMediaTypeException"),
    (_set(2, codec_id="A_MPEG/L3"), "UnsupportedStreamMediaTypeException"),
    (_set(2, codec_private=b""), "MissingCodecPrivateDataException"),
    (_set(1, codec_private=b""), "MissingCodecPrivateDataException"),
    (_set(1, codec_private=b"\x00\x00\x00\x01\x67\x64"), "InvalidCodecPrivateDataException"),
    (_set(2, codec_private=b"\x00"), "InvalidCodecPrivateDataException"),
], ids=["video-codec", "audio-codec", "no-audio-cpd", "no-video-cpd", "bad-avcc", "bad-asc"])
def test_media_errors(server, change, code):
    name, _, t0, t1 = ingest(server, body_with_tracks(H264_AAC, change))
    try:
        server.am().get_hls_streaming_session_url(**on_demand(name, t0, t1))
        pytest.fail(f"expected {code}")
    except ClientError as e:
        assert e.response["Error"]["Code"] == code, e.response
        if code == "MissingCodecPrivateDataException":
            assert e.response["Error"]["Message"].startswith("Missing codec private data in fragment for track")


def test_missing_audio_cpd_message_names_track_2(server):
    name, _, t0, t1 = ingest(server, body_with_tracks(H264_AAC, _set(2, codec_private=b"")))
    r = server.aws("kinesis-video-archived-media", "get-hls-streaming-session-url", "--stream-name", name,
                   "--playback-mode", "ON_DEMAND", "--hls-fragment-selector",
                   f"FragmentSelectorType=SERVER_TIMESTAMP,TimestampRange={{StartTimestamp={iso(t0)},"
                   f"EndTimestamp={iso(t1)}}}")
    assert cli_error(r) == "MissingCodecPrivateDataException"
    assert "Missing codec private data in fragment for track 2." in r[2]


def test_mpeg_ts(server, good):
    name, _, t0, t1 = good
    am = server.am()
    url = am.get_hls_streaming_session_url(
        **on_demand(name, t0, t1, ContainerFormat="MPEG_TS"))["HLSStreamingSessionURL"]
    assert "/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=" in url
    hevc, _, h0, h1 = ingest(server, H265.read_bytes())
    assert am.get_hls_streaming_session_url(**on_demand(hevc, h0, h1))["HLSStreamingSessionURL"]
    e = pytest.raises(ClientError, am.get_hls_streaming_session_url,
                      **on_demand(hevc, h0, h1, ContainerFormat="MPEG_TS"))
    assert e.value.response["Error"]["Code"] == "UnsupportedStreamMediaTypeException"
    assert "MPEG_TS" in e.value.response["Error"]["Message"]


def invalid_session_requests(name: str, t0: float, t1: float, protocol: str = "HLS") -> list[dict]:
    """Requests Get{HLS,DASH}StreamingSessionURL refuses with InvalidArgumentException (the same rules under each
    API's member names)."""
    sel = f"{protocol}FragmentSelector"
    max_results, enums = {
        "HLS": ("MaxMediaPlaylistFragmentResults", [("ContainerFormat", "MP4"), ("DiscontinuityMode", "SOMETIMES")]),
        "DASH": ("MaxManifestFragmentResults", [("DisplayFragmentNumber", "SOMETIMES")]),
    }[protocol]

    def on_demand_(a: float, b: float, **kw) -> dict:
        return {"StreamName": name, "PlaybackMode": "ON_DEMAND",
                sel: {"FragmentSelectorType": "SERVER_TIMESTAMP",
                      "TimestampRange": {"StartTimestamp": ts(a), "EndTimestamp": ts(b)}}, **kw}

    now = time.time()
    return [
        {"StreamName": name, "PlaybackMode": "ON-DEMAND"},
        {"StreamName": name, "PlaybackMode": "ON_DEMAND"},
        {"StreamName": name, "PlaybackMode": "LIVE_REPLAY", sel: {"FragmentSelectorType": "SERVER_TIMESTAMP"}},
        {"StreamName": name, "PlaybackMode": "LIVE", sel: {"TimestampRange": {"StartTimestamp": ts(t0)}}},
        {"StreamName": name, "PlaybackMode": "ON_DEMAND",
         sel: {"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": {"StartTimestamp": ts(t0)}}},
        {"StreamName": name, sel: {"FragmentSelectorType": "CLIENT_TIMESTAMP"}},
        {"PlaybackMode": "LIVE"},
        on_demand_(t1, t0),
        on_demand_(now - 2 * 86400, now - 1),
        on_demand_(t0, now + 3600),
        on_demand_(t0, t1, Expires=43201),
        on_demand_(t0, t1, Expires=299),
        on_demand_(t0, t1, **{max_results: 0}),
        on_demand_(t0, t1, **{max_results: 5001}),
        on_demand_(t0, t1, DisplayFragmentTimestamp="YES"),
        *[on_demand_(t0, t1, **{member: value}) for member, value in enums],
    ]


def test_invalid_arguments(server, good):
    name, _, t0, t1 = good
    am = raw_am(server)
    for args in invalid_session_requests(name, t0, t1):
        assert error_code(lambda: am.get_hls_streaming_session_url(**args)) == "InvalidArgumentException", args


def test_no_rate_limit_by_default(server, good):
    """A self-hosted archive does not throttle its own users: 200 session URLs from 8 threads all succeed."""
    from concurrent.futures import ThreadPoolExecutor
    name, _, t0, t1 = good
    am = server.am()
    with ThreadPoolExecutor(8) as pool:
        urls = list(pool.map(lambda _: am.get_hls_streaming_session_url(**on_demand(name, t0, t1)), range(200)))
    assert all(u["HLSStreamingSessionURL"] for u in urls)


def test_client_limit_per_stream_with_aws_quotas(server_factory, workroot):
    """`[hls_rate_limits] mode = "aws"` with no waiting: 25 TPS per stream with a 2 s burst; 200 requests
    from 8 threads (far faster than 25/s) hit it."""
    from concurrent.futures import ThreadPoolExecutor
    conf = workroot / "aws-quotas.toml"
    conf.write_text('[hls_rate_limits]\nmode = "aws"\nmax_delay_seconds = 0\n')
    s = server_factory(extra_args=["--config", str(conf)])
    name, _, t0, t1 = ingest(s, H264_AAC.read_bytes())
    am = s.am()

    def one(_):
        try:
            am.get_hls_streaming_session_url(**on_demand(name, t0, t1))
            return "ok"
        except ClientError as e:
            return e.response["Error"]["Code"]

    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(200)))
    elapsed = time.monotonic() - start
    assert set(codes) <= {"ok", "ClientLimitExceededException"}, codes
    if elapsed < 5:  # 50 burst + 25/s * 5 s = 175 < 200
        assert "ClientLimitExceededException" in codes, (elapsed, codes)
    assert codes.count("ok") >= 40, codes  # the burst
    # Other streams are not affected.
    other, _, o0, o1 = ingest(s, H264_AAC.read_bytes())
    assert am.get_hls_streaming_session_url(**on_demand(other, o0, o1))["HLSStreamingSessionURL"]


# -- what the token grants on the GET side ---------------------------------------------------------


def test_valid_tampered_and_deleted_stream_tokens(server):
    name, arn, t0, t1 = ingest(server, H264_AAC.read_bytes())
    url = server.am().get_hls_streaming_session_url(**on_demand(name, t0, t1))["HLSStreamingSessionURL"]
    status, _, body = get(url)
    assert status == 200, body
    assert body.startswith(b"#EXTM3U"), body
    # One character of the token changed.
    i = url.index("SessionToken=") + len("SessionToken=") + 20
    tampered = url[:i] + ("A" if url[i] != "A" else "B") + url[i + 1:]
    status, headers, body = get(tampered)
    assert status == 403, body
    assert b"#EXTM3U" not in body
    assert get(url.replace("SessionToken=", "SessionToken=x"))[0] == 403
    # Deleted: the session serves nothing, and a new stream of the same name does not inherit it.
    server.kv().delete_stream(StreamARN=arn)
    status, _, body = get(url)
    assert status == 403, body
    server.kv().create_stream(StreamName=name, DataRetentionInHours=24)
    status, _, body = get(url)
    assert status == 403, body


def test_token_of_one_stream_does_not_reach_another(server):
    a, _, a0, a1 = ingest(server, H264_AAC.read_bytes())
    b, _, _, _ = ingest(server, H264_AAC.read_bytes())
    url = server.am().get_hls_streaming_session_url(**on_demand(a, a0, a1))["HLSStreamingSessionURL"]
    other = kvs.all_fragments(server.am(), b)[0]["FragmentNumber"]
    base, token = url.split("getHLSMasterPlaylist.m3u8?SessionToken=")
    status, headers, body = get(f"{base}getMP4MediaFragment.mp4?FragmentNumber={other}"
                                f"&SessionToken={token}&TrackNumber=1")
    assert 400 <= status < 500, (status, body[:200])
    assert not body.startswith(b"\x00\x00") and b"moof" not in body[:64], body[:64]


def test_expired_token(server_factory):
    s = server_factory(extra_args=["--session-expires-min", "1"])
    name, _, t0, t1 = ingest(s, H264_AAC.read_bytes())
    # The default bounds still hold on a normal server; this one allows 1 s.
    url = raw_am(s).get_hls_streaming_session_url(**on_demand(name, t0, t1, Expires=2))["HLSStreamingSessionURL"]
    assert get(url)[0] == 200
    time.sleep(2.2)
    status, headers, body = get(url)
    assert status == 403, body
    assert b"Streaming session token is expired" in body, body
    assert headers.get("x-amzn-errortype", "").startswith("NotAuthorizedException"), headers


def test_sessions_survive_a_restart(fresh_server):
    name, _, t0, t1 = ingest(fresh_server, H264_AAC.read_bytes())
    url = fresh_server.am().get_hls_streaming_session_url(**on_demand(name, t0, t1))["HLSStreamingSessionURL"]
    key = fresh_server.data_dir / "session.key"
    assert key.exists() and key.stat().st_mode & 0o777 == 0o600
    fresh_server.restart()
    status, _, body = get(url)
    assert status == 200, body
