"""What AWS's C producer SDK sends, byte for byte where it matters (docs/wire.md#putmedia-body).

The SDK's call sequence on a new stream, tab-pretty-printed JSON bodies, `Host` signed without its
port, `content-type: application/json` on PutMedia, `Expect: 100-continue`, 65,524-byte chunks,
an unpadded `x-amzn-producer-start-timestamp`, ABSOLUTE epoch-ms cluster timecodes, unknown-size
Segment and Clusters with 8-byte timecodes, audio blocks without the key-frame bit.
"""

import json
import socket
import time
import uuid
from urllib.parse import urlsplit

import mkv
from kvs import raw_post

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import ACCESS_KEY, REGION, SECRET_KEY


def sdk_post(endpoint, path, payload):
    """A control-plane call as the SDK makes it: tab-indented JSON, SDK user agent."""
    body = json.dumps(payload, indent="\t").encode()
    return raw_post(endpoint, path, body, headers={"User-Agent": "AWS-PRODUCER-SDK-KVS/1.6.0 GCC/12.2.0 Linux/6"})


def kvs_style_body(source: mkv.Source, t0_ms: int) -> bytes:
    """The fixture re-emitted as the SDK writes it: 8-byte sizes, absolute ms timecodes, audio
    without the key-frame bit, an unknown-size cluster per key frame."""
    out = bytearray(source.header)
    for i, c in enumerate(source.clusters):
        blocks = []
        for b, frame in source.cluster_frames(i):
            is_audio = source.mkv.segments[0].tracks[b.track].type == 2
            blocks.append(mkv.simple_block(b.track, b.rel_timecode, b.keyframe and not is_audio, frame))
        out += mkv.unknown_size(mkv.CLUSTER)
        out += mkv.uint_element(mkv.TIMECODE, t0_ms + c.timecode, width=8)
        out += b"".join(blocks)
    return bytes(out)


def put_media_like_libcurl(endpoint: str, stream: str, body: bytes, start_s: float):
    u = urlsplit(endpoint)
    secs, ms = int(start_s), int(round((start_s % 1) * 1000)) % 1000
    headers = {
        "Host": u.hostname,  # no port: what the SDK sends and signs
        "Accept": "*/*",
        "Content-Type": "application/json",
        "Transfer-Encoding": "chunked",
        "Connection": "keep-alive",
        "User-Agent": "AWS-PRODUCER-SDK-KVS/1.6.0 GCC/12.2.0 Linux/6",
        "x-amzn-stream-name": stream,
        "x-amzn-fragment-timecode-type": "ABSOLUTE",
        "x-amzn-fragment-acknowledgment-required": "1",
        "x-amzn-producer-start-timestamp": f"{secs}.{ms}",  # unpadded, like 1795570809.39
    }
    # Over plain HTTP botocore signs the body's hash: for the empty body that is the SHA-256 of the
    # empty string, which is exactly what the C SDK puts in the canonical request for PutMedia.
    req = AWSRequest(method="POST", url=f"http://{u.hostname}/putMedia", data=b"", headers=dict(headers))
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "kinesisvideo", REGION).add_auth(req)
    signed = dict(req.headers.items())
    signed.pop("X-Amz-Content-SHA256", None)  # the SDK sends none
    signed["Expect"] = "100-continue"

    sock = socket.create_connection((u.hostname, u.port), timeout=30)
    head = "POST /putMedia HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in signed.items()) + "\r\n"
    t_head = time.monotonic()
    sock.sendall(head.encode())
    # libcurl waits up to 1 s for `100 Continue` before it sends the body anyway.
    sock.settimeout(1.0)
    interim = sock.recv(4096)
    continue_after = time.monotonic() - t_head
    sock.settimeout(30)
    for i in range(0, len(body), 65524):
        part = body[i:i + 65524]
        sock.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
    sock.sendall(b"0\r\n\r\n")
    raw = bytearray(interim)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        # The response ends with the chunked terminator once every ack is out.
        if raw.endswith(b"\r\n0\r\n\r\n"):
            break
        data = sock.recv(65536)
        if not data:
            break
        raw += data
    sock.close()
    return bytes(interim), continue_after, bytes(raw)


def decode_acks(raw: bytes):
    # Skip the interim 100 response head and the 200 head, then undo the chunking.
    body = raw[raw.index(b"HTTP/1.1 200"):]
    body = body[body.index(b"\r\n\r\n") + 4:]
    out = bytearray()
    while body:
        line, _, body = body.partition(b"\r\n")
        n = int(line, 16)
        if n == 0:
            break
        out += body[:n]
        body = body[n + 2:]
    return [json.loads(l) for l in out.split(b"\n") if l.strip()]


def test_c_producer_sdk_sequence_on_a_new_stream(server, fixture_files):
    ep = server.endpoint
    stream = "sdk-" + uuid.uuid4().hex[:8]
    status, _, body = sdk_post(ep, "/describeStream", {"StreamName": stream})
    assert status == 404
    assert json.loads(body)["Message"] == "The requested stream is not found or not active."

    status, _, body = sdk_post(ep, "/createStream", {
        "DeviceName": "device-" + uuid.uuid4().hex[:6], "StreamName": stream,
        "MediaType": "video/h264,audio/aac", "DataRetentionInHours": 2})
    assert status == 200, body
    arn = json.loads(body)["StreamARN"]
    status, _, body = sdk_post(ep, "/tagStream", {"StreamARN": arn, "Tags": {"camera": "lobby"}})
    assert status == 200, body
    status, _, body = sdk_post(ep, "/getDataEndpoint", {"StreamName": stream, "APIName": "PUT_MEDIA"})
    assert status == 200, body
    data_endpoint = json.loads(body)["DataEndpoint"]
    assert not data_endpoint.endswith("/")

    source = mkv.Source(fixture_files["h264_aac.mkv"])
    t0 = 1_795_570_809_000
    body = kvs_style_body(source, t0)
    interim, continue_after, raw = put_media_like_libcurl(data_endpoint, stream, body, 1795570809.039)
    assert interim.startswith(b"HTTP/1.1 100"), f"no 100 Continue: {interim[:80]!r}"
    assert continue_after < 0.5, f"100 Continue took {continue_after:.2f}s (libcurl would stall 1 s)"
    acks = decode_acks(raw)
    persisted = [a for a in acks if a["EventType"] == "PERSISTED"]
    assert [a for a in acks if a["EventType"] == "ERROR"] == []
    assert len(persisted) == len(source.clusters)
    # FragmentTimecode echoes the absolute cluster timecode (docs/wire.md#putmedia-acks).
    assert [a["FragmentTimecode"] for a in persisted] == [t0 + c.timecode for c in source.clusters]

    frags = server.am().list_fragments(
        StreamName=stream,
        FragmentSelector={"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                          "TimestampRange": {"StartTimestamp": t0 / 1000 - 1, "EndTimestamp": t0 / 1000 + 100}},
    )["Fragments"]
    assert sorted(f["FragmentNumber"] for f in frags) == sorted(a["FragmentNumber"] for a in persisted)
