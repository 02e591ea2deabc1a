"""Raw HTTP helpers: SigV4-signed JSON POSTs and a streaming PutMedia client (no SDK has PutMedia).

PutMedia is signed like AWS's C producer SDK does it: SigV4 (service kinesisvideo) over the headers,
with the SHA-256 of the empty string as the payload hash, then the body is sent chunked.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import ACCESS_KEY, REGION, SECRET_KEY

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def sign(endpoint: str, path: str, headers: dict, body: bytes, access_key=ACCESS_KEY, secret_key=SECRET_KEY,
         region=REGION) -> dict:
    """Return headers (with Host, X-Amz-Date, Authorization) for a SigV4-signed POST."""
    req = AWSRequest(method="POST", url=endpoint + path, data=body, headers=dict(headers))
    SigV4Auth(Credentials(access_key, secret_key), "kinesisvideo", region).add_auth(req)
    out = dict(req.headers.items())
    out["Host"] = urlsplit(endpoint).netloc
    return out


def raw_post(endpoint: str, path: str, payload=None, *, signed=True, headers=None, timeout=30):
    """POST a JSON body; returns (status, headers as a lower-cased dict, raw body bytes)."""
    body = b"" if payload is None else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    if signed:
        h = sign(endpoint, path, h, body)
    u = urlsplit(endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def json_body(data: bytes):
    try:
        return json.loads(data.decode() or "null")
    except ValueError:
        return None


class PutMedia:
    """One streaming PutMedia request: send() body bytes as chunks while a thread collects acks."""

    def __init__(self, endpoint: str, stream: str | None, *, timecode_type="RELATIVE",
                 producer_start: float | None = None, access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                 stream_arn: str | None = None, extra_headers: dict | None = None, timeout: float = 60):
        self.endpoint = endpoint
        u = urlsplit(endpoint)
        h = {
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
            "x-amzn-fragment-timecode-type": timecode_type,
            "x-amzn-fragment-acknowledgment-required": "1",
            "x-amzn-producer-start-timestamp": "%.3f" % (time.time() if producer_start is None else producer_start),
        }
        if stream is not None:
            h["x-amzn-stream-name"] = stream
        if stream_arn is not None:
            h["x-amzn-stream-arn"] = stream_arn
        h.update(extra_headers or {})
        h = sign(endpoint, "/putMedia", h, b"", access_key, secret_key)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        head = "POST /putMedia HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
        self.sock.sendall(head.encode())
        self.status: int | None = None
        self.headers: dict = {}
        self.error_body: bytes = b""
        self.acks: list[dict] = []
        self.ack_times: list[float] = []  # time.monotonic() at which each ack was read
        self.raw = bytearray()
        self.send_error: Exception | None = None
        self.read_error: Exception | None = None
        self.closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    # -- sending ---------------------------------------------------------------------------------

    def send(self, data: bytes, chunk: int = 65524) -> bool:
        """Send body bytes as HTTP chunks; False (and send_error set) if the server closed on us."""
        if self.send_error:
            return False
        try:
            for i in range(0, len(data), chunk):
                part = data[i:i + chunk]
                self.sock.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
            return True
        except OSError as e:
            self.send_error = e
            return False

    def finish(self) -> bool:
        if self.send_error:
            return False
        try:
            self.sock.sendall(b"0\r\n\r\n")
            return True
        except OSError as e:
            self.send_error = e
            return False

    # -- receiving -------------------------------------------------------------------------------

    def _read(self):
        try:
            resp = http.client.HTTPResponse(self.sock, method="POST")
            resp.begin()
            with self._cond:
                self.status = resp.status
                self.headers = {k.lower(): v for k, v in resp.getheaders()}
                self._cond.notify_all()
            if resp.status != 200:
                self.error_body = resp.read()
                return
            dec = json.JSONDecoder()
            buf = ""
            while True:
                data = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
                if not data:
                    break
                self.raw += data
                buf += data.decode(errors="replace")
                while True:
                    buf = buf.lstrip()
                    if not buf:
                        break
                    try:
                        obj, end = dec.raw_decode(buf)
                    except ValueError:
                        break
                    buf = buf[end:]
                    with self._cond:
                        self.acks.append(obj)
                        self.ack_times.append(time.monotonic())
                        self._cond.notify_all()
        except Exception as e:  # noqa: BLE001 - reported to the test
            self.read_error = e
        finally:
            with self._cond:
                self.closed = True
                self._cond.notify_all()

    def wait_status(self, timeout: float = 10) -> int | None:
        with self._cond:
            self._cond.wait_for(lambda: self.status is not None or self.closed, timeout)
            return self.status

    def wait_for(self, predicate, timeout: float = 30) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.acks) or self.closed, timeout) and predicate(self.acks)

    def wait_closed(self, timeout: float = 60) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(5)

    # -- views -------------------------------------------------------------------------------------

    def events(self, kind: str) -> list[dict]:
        return [a for a in self.acks if a.get("EventType") == kind]

    @property
    def persisted(self) -> list[dict]:
        return self.events("PERSISTED")

    @property
    def errors(self) -> list[dict]:
        return self.events("ERROR")

    def describe(self) -> str:
        return (f"status={self.status} acks={self.acks} send_error={self.send_error!r} "
                f"read_error={self.read_error!r} error_body={self.error_body[:300]!r}")


def put_media_body(endpoint: str, stream: str, body: bytes, *, settle: float = 60, **kw) -> PutMedia:
    """Send a whole body and wait until the server ends the response."""
    pm = PutMedia(endpoint, stream, **kw)
    pm.send(body)
    pm.finish()
    pm.wait_closed(settle)
    pm.close()
    return pm


def list_fragments(am, stream: str, selector_type: str, start: float, end: float, **kw) -> list[dict]:
    """All fragments in the range (following NextToken with MaxResults kw), as returned."""
    from datetime import datetime, timezone

    sel = {"FragmentSelectorType": selector_type,
           "TimestampRange": {"StartTimestamp": datetime.fromtimestamp(start, timezone.utc),
                              "EndTimestamp": datetime.fromtimestamp(end, timezone.utc)}}
    out = []
    r = am.list_fragments(StreamName=stream, FragmentSelector=sel, **kw)
    out += r.get("Fragments", [])
    seen_tokens = set()
    while r.get("NextToken"):
        tok = r["NextToken"]
        assert tok not in seen_tokens, "NextToken repeats"
        seen_tokens.add(tok)
        r = am.list_fragments(StreamName=stream, NextToken=tok, **kw)
        out += r.get("Fragments", [])
    return out


def all_fragments(am, stream: str) -> list[dict]:
    """Every fragment of a stream by server time (a wide window), sorted by fragment number."""
    now = time.time()
    frags = list_fragments(am, stream, "SERVER_TIMESTAMP", now - 3 * 86400, now + 3600)
    return sorted(frags, key=lambda f: int(f["FragmentNumber"]))


def wait_fragments(am, stream: str, count: int, timeout: float = 5) -> list[dict]:
    """ListFragments is eventually consistent (< 1 s after PERSISTED): poll until `count` are listed."""
    deadline = time.monotonic() + timeout
    while True:
        frags = all_fragments(am, stream)
        if len(frags) >= count or time.monotonic() > deadline:
            return frags
        time.sleep(0.2)
