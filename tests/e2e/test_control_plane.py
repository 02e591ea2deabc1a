"""Control plane (docs/wire.md#control-plane, docs/wire.md#errors): the real AWS CLI for the main path, boto3 and raw HTTP where easier."""

from __future__ import annotations

import re
import time

import pytest
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, REGION, SECRET_KEY, unique_name
from kvs import json_body, raw_post

ARN_RE = re.compile(r"^arn:aws:kinesisvideo:(?P<region>[a-z0-9-]+):(?P<account>[0-9]+):stream/(?P<name>[a-zA-Z0-9_.-]+)/(?P<millis>[0-9]+)$")
NOT_FOUND = "The requested stream is not found or not active."
API_NAMES = ["PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
             "GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP", "GET_IMAGES"]


def expect_error(fn, code: str, status: int, **kw) -> ClientError:
    with pytest.raises(ClientError) as ei:
        fn(**kw)
    e = ei.value
    assert e.response["Error"]["Code"] == code, e.response
    meta = e.response["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == status, e.response
    headers = meta.get("HTTPHeaders", {})
    assert "x-amzn-requestid" in headers, headers
    assert headers.get("x-amzn-errortype", "").split(":")[0] == code, headers
    return e


def cli_error_code(stderr: str) -> str | None:
    m = re.search(r"An error occurred \((\w+)\)", stderr)
    return m.group(1) if m else None


# ------------------------------------------------------------------------------------------------
# The main path, with the AWS CLI


def test_create_describe_with_cli(server):
    name = unique_name()
    t0 = time.time()
    rc, out, err = server.aws("kinesisvideo", "create-stream", "--stream-name", name,
                              "--data-retention-in-hours", "24", "--media-type", "video/h264",
                              "--device-name", "cam-1")
    t1 = time.time()
    assert rc == 0, err
    arn = out["StreamARN"]
    m = ARN_RE.match(arn)
    assert m, arn
    assert m["region"] == REGION and m["name"] == name
    assert (t0 - 5) * 1000 <= int(m["millis"]) <= (t1 + 5) * 1000, (arn, t0, t1)

    for how in (["--stream-name", name], ["--stream-arn", arn]):
        rc, out, err = server.aws("kinesisvideo", "describe-stream", *how)
        assert rc == 0, err
        info = out["StreamInfo"]
        assert info["StreamName"] == name
        assert info["StreamARN"] == arn
        assert info["Status"] == "ACTIVE"
        assert info["MediaType"] == "video/h264"
        assert info["DeviceName"] == "cam-1"
        assert info["DataRetentionInHours"] == 24
        assert re.fullmatch(r"[a-zA-Z0-9]{1,64}", info["Version"]), info
        assert "CreationTime" in info


def test_describe_stream_wire_shape(server):
    """CreationTime must be a JSON number (epoch seconds) on the wire: the JS SDK v3 rejects strings."""
    name, arn = server.create_stream()
    status, headers, body = raw_post(server.endpoint, "/describeStream", {"StreamName": name})
    assert status == 200, body
    assert "x-amzn-requestid" in headers
    info = json_body(body)["StreamInfo"]
    assert isinstance(info["CreationTime"], (int, float)) and not isinstance(info["CreationTime"], bool)
    assert abs(info["CreationTime"] - time.time()) < 120
    assert isinstance(info["DataRetentionInHours"], int)
    assert info["StreamARN"] == arn


def test_list_streams_pagination(fresh_server):
    kv = fresh_server.kv()
    names = [f"page-{i}-{unique_name('s')}" for i in range(5)]
    others = [f"other-{i}-{unique_name('s')}" for i in range(2)]
    for n in names + others:
        kv.create_stream(StreamName=n, DataRetentionInHours=1)

    seen, pages, token = [], 0, None
    while True:
        kw = {"MaxResults": 2}
        if token:
            kw["NextToken"] = token
        r = kv.list_streams(**kw)
        pages += 1
        assert len(r["StreamInfoList"]) <= 2
        seen += [s["StreamName"] for s in r["StreamInfoList"]]
        token = r.get("NextToken")
        if not token:
            break
        assert pages < 20, "pagination does not end"
    assert sorted(seen) == sorted(names + others)
    assert len(seen) == len(set(seen))
    assert pages >= 4

    r = kv.list_streams(StreamNameCondition={"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": "page-"})
    assert sorted(s["StreamName"] for s in r["StreamInfoList"]) == sorted(names)
    for s in r["StreamInfoList"]:
        assert s["Status"] == "ACTIVE" and ARN_RE.match(s["StreamARN"])

    # BEGINS_WITH with pages of 2
    paged = []
    for page in kv.get_paginator("list_streams").paginate(
            StreamNameCondition={"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": "page-"},
            PaginationConfig={"PageSize": 2}):
        paged += [s["StreamName"] for s in page["StreamInfoList"]]
    assert sorted(paged) == sorted(names)

    # The CLI follows NextToken itself (--page-size sets MaxResults).
    rc, out, err = fresh_server.aws("kinesisvideo", "list-streams", "--page-size", "2")
    assert rc == 0, err
    assert sorted(s["StreamName"] for s in out["StreamInfoList"]) == sorted(names + others)


def test_update_stream_changes_version(server):
    name, arn = server.create_stream()
    rc, out, err = server.aws("kinesisvideo", "describe-stream", "--stream-name", name)
    assert rc == 0, err
    v1 = out["StreamInfo"]["Version"]
    rc, out, err = server.aws("kinesisvideo", "update-stream", "--stream-name", name, "--current-version", v1,
                              "--media-type", "video/h265", "--device-name", "cam-2")
    assert rc == 0, err
    info = server.kv().describe_stream(StreamARN=arn)["StreamInfo"]
    assert info["Version"] != v1
    assert info["MediaType"] == "video/h265"
    assert info["DeviceName"] == "cam-2"

    # a stale version
    rc, out, err = server.aws("kinesisvideo", "update-stream", "--stream-name", name, "--current-version", v1,
                              "--media-type", "video/h264")
    assert rc != 0 and cli_error_code(err) == "VersionMismatchException", err
    expect_error(server.kv().update_stream, "VersionMismatchException", 400,
                 StreamName=name, CurrentVersion=v1, MediaType="video/h264")


def test_update_data_retention(server):
    kv = server.kv()
    name, arn = server.create_stream(retention=24)
    v = kv.describe_stream(StreamName=name)["StreamInfo"]["Version"]
    rc, out, err = server.aws("kinesisvideo", "update-data-retention", "--stream-name", name,
                              "--current-version", v, "--operation", "INCREASE_DATA_RETENTION",
                              "--data-retention-change-in-hours", "24")
    assert rc == 0, err
    info = kv.describe_stream(StreamName=name)["StreamInfo"]
    assert info["DataRetentionInHours"] == 48
    assert info["Version"] != v

    kv.update_data_retention(StreamARN=arn, CurrentVersion=info["Version"],
                             Operation="DECREASE_DATA_RETENTION", DataRetentionChangeInHours=12)
    info = kv.describe_stream(StreamName=name)["StreamInfo"]
    assert info["DataRetentionInHours"] == 36

    # below zero
    expect_error(kv.update_data_retention, "InvalidArgumentException", 400, StreamName=name,
                 CurrentVersion=info["Version"], Operation="DECREASE_DATA_RETENTION", DataRetentionChangeInHours=100)
    # stale version
    expect_error(kv.update_data_retention, "VersionMismatchException", 400, StreamName=name,
                 CurrentVersion=v, Operation="INCREASE_DATA_RETENTION", DataRetentionChangeInHours=1)
    assert kv.describe_stream(StreamName=name)["StreamInfo"]["DataRetentionInHours"] == 36


@pytest.mark.parametrize("api", API_NAMES)
def test_get_data_endpoint(server, api):
    name, arn = server.create_stream()
    rc, out, err = server.aws("kinesisvideo", "get-data-endpoint", "--stream-name", name, "--api-name", api)
    assert rc == 0, err
    assert out["DataEndpoint"] == server.endpoint
    assert server.kv().get_data_endpoint(StreamARN=arn, APIName=api)["DataEndpoint"] == server.endpoint


def test_get_data_endpoint_errors(server):
    name, _ = server.create_stream()
    expect_error(server.kv().get_data_endpoint, "InvalidArgumentException", 400, StreamName=name, APIName="NOPE")
    expect_error(server.kv().get_data_endpoint, "ResourceNotFoundException", 404,
                 StreamName=unique_name("missing"), APIName="PUT_MEDIA")


def test_stream_tags(server):
    kv = server.kv()
    name, arn = server.create_stream(Tags={"created": "yes"})
    rc, out, err = server.aws("kinesisvideo", "tag-stream", "--stream-name", name, "--tags", "a=1,b=2")
    assert rc == 0, err
    rc, out, err = server.aws("kinesisvideo", "list-tags-for-stream", "--stream-name", name)
    assert rc == 0, err
    assert out["Tags"] == {"created": "yes", "a": "1", "b": "2"}
    rc, out, err = server.aws("kinesisvideo", "untag-stream", "--stream-arn", arn, "--tag-key-list", "a", "created")
    assert rc == 0, err
    assert kv.list_tags_for_stream(StreamARN=arn)["Tags"] == {"b": "2"}


def test_resource_tags(server):
    """TagResource takes a list of {Key, Value}; ListTagsForResource answers a map."""
    kv = server.kv()
    name, arn = server.create_stream()
    rc, out, err = server.aws("kinesisvideo", "tag-resource", "--resource-arn", arn,
                              "--tags", '[{"Key": "team", "Value": "video"}, {"Key": "env", "Value": ""}]')
    assert rc == 0, err
    rc, out, err = server.aws("kinesisvideo", "list-tags-for-resource", "--resource-arn", arn)
    assert rc == 0, err
    assert out["Tags"] == {"team": "video", "env": ""}
    # the same tags are the stream's tags
    assert kv.list_tags_for_stream(StreamName=name)["Tags"] == {"team": "video", "env": ""}
    kv.untag_resource(ResourceARN=arn, TagKeyList=["env"])
    assert kv.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"team": "video"}
    # raw wire shape of the paths with capitals
    status, headers, body = raw_post(server.endpoint, "/ListTagsForResource", {"ResourceARN": arn})
    assert status == 200 and json_body(body)["Tags"] == {"team": "video"}


def test_delete_stream_by_arn(server):
    kv = server.kv()
    name, arn = server.create_stream()
    rc, out, err = server.aws("kinesisvideo", "delete-stream", "--stream-arn", arn)
    assert rc == 0, err
    e = expect_error(kv.describe_stream, "ResourceNotFoundException", 404, StreamName=name)
    assert e.response["Error"]["Message"] == NOT_FOUND
    rc, out, err = server.aws("kinesisvideo", "describe-stream", "--stream-name", name)
    assert rc != 0 and cli_error_code(err) == "ResourceNotFoundException", err
    # the name can be used again, with a new ARN
    arn2 = kv.create_stream(StreamName=name)["StreamARN"]
    assert arn2.split("/")[1] == name


def test_delete_stream_errors(server):
    kv = server.kv()
    name, arn = server.create_stream()
    expect_error(kv.delete_stream, "VersionMismatchException", 400, StreamARN=arn, CurrentVersion="stale0")
    bogus = re.sub(r"/\d+$", "/1", arn.replace(name, unique_name("gone")))
    expect_error(kv.delete_stream, "ResourceNotFoundException", 404, StreamARN=bogus)


# ------------------------------------------------------------------------------------------------
# Error cases


def test_missing_name_and_arn(server):
    expect_error(server.kv().describe_stream, "InvalidArgumentException", 400)
    name, _ = server.create_stream()
    expect_error(server.kv().get_data_endpoint, "InvalidArgumentException", 400, APIName="PUT_MEDIA")


@pytest.mark.parametrize("bad", ["bad name!", "x" * 257, "slash/name", "ünicode"])
def test_bad_stream_names(server, bad):
    expect_error(server.kv().create_stream, "InvalidArgumentException", 400, StreamName=bad)


def test_max_length_name_ok(server):
    suffix = unique_name()
    name = "n" * (256 - len(suffix)) + suffix
    assert len(name) == 256
    arn = server.kv().create_stream(StreamName=name)["StreamARN"]
    assert ARN_RE.match(arn)


def test_unknown_stream(server):
    e = expect_error(server.kv().describe_stream, "ResourceNotFoundException", 404, StreamName=unique_name("nope"))
    assert e.response["Error"]["Message"] == NOT_FOUND
    rc, out, err = server.aws("kinesisvideo", "describe-stream", "--stream-name", unique_name("nope"))
    assert rc != 0 and cli_error_code(err) == "ResourceNotFoundException", (rc, err)
    assert NOT_FOUND in err


def test_duplicate_create(server):
    name, _ = server.create_stream()
    expect_error(server.kv().create_stream, "ResourceInUseException", 400, StreamName=name)
    rc, out, err = server.aws("kinesisvideo", "create-stream", "--stream-name", name)
    assert rc != 0 and cli_error_code(err) == "ResourceInUseException", err


def test_bad_enum_and_ranges(server):
    kv = server.kv()
    expect_error(kv.create_stream, "InvalidArgumentException", 400, StreamName=unique_name(), MediaType="not a type")
    expect_error(kv.create_stream, "InvalidArgumentException", 400, StreamName=unique_name(),
                 DataRetentionInHours=87601)
    expect_error(kv.list_streams, "InvalidArgumentException", 400, MaxResults=10001)


def test_unknown_operation(server):
    status, headers, body = raw_post(server.endpoint, "/fooBar", {})
    assert status == 404, body
    assert headers.get("x-amzn-errortype", "").split(":")[0] == "UnknownOperationException", headers
    assert "x-amzn-requestid" in headers


ERROR_REQUESTS = [
    ("/describeStream", {"StreamName": "definitely-not-there-0"}, 404, "ResourceNotFoundException"),
    ("/describeStream", {}, 400, "InvalidArgumentException"),
    ("/createStream", {"StreamName": "bad name!"}, 400, "InvalidArgumentException"),
    ("/createStream", b"{not json", 400, None),
    ("/listFragments", {"StreamName": "definitely-not-there-0",
                        "FragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP",
                                             "TimestampRange": {"StartTimestamp": 1, "EndTimestamp": 2}}},
     404, "ResourceNotFoundException"),
    ("/fooBar", {}, 404, "UnknownOperationException"),
]


@pytest.mark.parametrize("path,payload,status,code", ERROR_REQUESTS)
def test_error_wire_format(server, path, payload, status, code):
    """Every error: x-amzn-RequestId, x-amzn-ErrorType and a JSON body with "Message" (docs/wire.md#errors)."""
    st, headers, body = raw_post(server.endpoint, path, payload)
    assert st == status, (st, body)
    assert headers.get("x-amzn-requestid"), headers
    etype = headers.get("x-amzn-errortype", "")
    assert etype, headers
    if code:
        assert etype.split(":")[0] == code
    doc = json_body(body)
    assert isinstance(doc, dict) and isinstance(doc.get("Message"), str) and doc["Message"], body
    assert "json" in headers.get("content-type", ""), headers


# ------------------------------------------------------------------------------------------------
# Signatures, with a credentials file


def test_auth_right_key(auth_server):
    rc, out, err = auth_server.aws("kinesisvideo", "create-stream", "--stream-name", unique_name())
    assert rc == 0, err
    rc, out, err = auth_server.aws("kinesisvideo", "list-streams")
    assert rc == 0, err
    name, arn = auth_server.create_stream()
    assert auth_server.kv().describe_stream(StreamARN=arn)["StreamInfo"]["StreamName"] == name


def test_auth_wrong_secret(auth_server):
    kv = auth_server.client(secret_key=SECRET_KEY + "x")
    expect_error(kv.list_streams, "InvalidSignatureException", 403)
    rc, out, err = auth_server.aws("kinesisvideo", "list-streams", secret_key="wrong")
    assert rc != 0 and cli_error_code(err) == "InvalidSignatureException", err


def test_auth_unknown_key(auth_server):
    kv = auth_server.client(access_key="AKIDUNKNOWN000000000")
    expect_error(kv.list_streams, "UnrecognizedClientException", 403)


def test_auth_missing(auth_server):
    status, headers, body = raw_post(auth_server.endpoint, "/listStreams", {}, signed=False)
    assert status == 403, body
    assert headers.get("x-amzn-errortype", "").split(":")[0] == "MissingAuthenticationTokenException", headers
    assert "x-amzn-requestid" in headers
    doc = json_body(body)
    assert isinstance(doc, dict) and (doc.get("message") or doc.get("Message")), body


def test_auth_archived_media_too(auth_server):
    name, _ = auth_server.create_stream()
    am = auth_server.client("kinesis-video-archived-media", secret_key="nope")
    expect_error(am.list_fragments, "InvalidSignatureException", 403, StreamName=name,
                 FragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP",
                                   "TimestampRange": {"StartTimestamp": 1, "EndTimestamp": 2}})


def test_no_credentials_accepts_any_key(server):
    """Without a credentials file any well-formed signature is accepted (docs/choices.md#unsigned-mode)."""
    kv = server.client(access_key="AKIDANYTHING", secret_key="whatever")
    kv.list_streams(MaxResults=1)
    assert ACCESS_KEY  # the default pair works too
