"""Sign requests with botocore (the AWS CLI's signer) at a fixed time; print them as JSON for botocore_oracle.rs."""
import datetime
import json
import sys
from unittest import mock
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

FIXED = datetime.datetime(2024, 3, 5, 6, 7, 8)
EPOCH_SECONDS = int((FIXED - datetime.datetime(1970, 1, 1)).total_seconds())
KEY_ID, SECRET = "AKIAORACLETEST000001", "oracle/secret+key=="

CASES = [
    # (name, method, url, headers, body, session token, presign expiry or None)
    ("describe_stream", "POST", "http://127.0.0.1:4567/describeStream",
     {"Content-Type": "application/json", "User-Agent": "aws-cli/2"}, b'{"StreamName": "s1"}', None, None),
    ("put_media_session_token", "POST", "http://127.0.0.1:4567/putMedia",
     {"x-amzn-stream-name": "cam-1", "x-amzn-fragment-timecode-type": "ABSOLUTE",
      "x-amzn-producer-start-timestamp": "1709618828.5", "x-amzn-fragment-acknowledgment-required": "1",
      "Transfer-Encoding": "chunked", "Content-Type": "application/json"}, b"", "IQoJb3JpZ2luX2VjE//token=", None),
    ("odd_path_and_query", "GET", "http://localhost:4567/a%20b/./c//d/../e?b=2&a=1&c=x%2Fy&a=0",
     {"X-Custom": "  spaced   value  "}, b"", None, None),
    ("presigned_put_media", "POST", "https://kvs.example.com/putMedia", {}, b"", None, 300),
    ("presigned_session_token", "GET", "https://kvs.example.com/getMedia", {}, b"", "tok/en+=", 3600),
]

out = []
for name, method, url, headers, body, token, expires in CASES:
    headers = dict(headers)
    headers["Host"] = urlsplit(url).netloc
    request = AWSRequest(method=method, url=url, headers=headers, data=body)
    credentials = Credentials(KEY_ID, SECRET, token)
    if expires is None:
        auth = SigV4Auth(credentials, "kinesisvideo", "us-west-2")
    else:
        auth = SigV4QueryAuth(credentials, "kinesisvideo", "us-west-2", expires=expires)
    with mock.patch("botocore.auth.get_current_datetime", return_value=FIXED):
        auth.add_auth(request)
    parts = urlsplit(request.url)
    out.append({
        "name": name,
        "method": method,
        "path": parts.path,
        "original_query": urlsplit(url).query,
        "query": parts.query,
        "headers": [[k, v] for k, v in request.headers.items()],
        "body_sha256": auth.payload(request),
        "session_token": token,
        "expires": expires,
    })
json.dump({"time": EPOCH_SECONDS, "access_key_id": KEY_ID, "secret": SECRET, "cases": out}, sys.stdout)
