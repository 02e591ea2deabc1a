#!/usr/bin/env python3
"""Regenerate the trimmed botocore models embedded in the openkvs client.

Source: botocore's service models (Apache-2.0, https://github.com/boto/botocore, botocore/data/<service>/2017-09-30/
service-2.json[.gz] and paginators-1.json). Kept: metadata, the operations openkvs's client exposes, the shapes they reach
(without documentation), and each operation's paginator (as "pagination"). Run: python3 trim.py (writes next to it).
"""
import gzip
import json
import os

import botocore

OPS = {
    "kinesisvideo": ["CreateStream", "DescribeStream", "ListStreams", "DeleteStream", "UpdateDataRetention",
                     "GetDataEndpoint", "TagStream", "ListTagsForStream"],
    "kinesis-video-archived-media": ["GetHLSStreamingSessionURL", "GetDASHStreamingSessionURL", "ListFragments",
                                     "GetMediaForFragmentList", "GetClip", "GetImages"],
    "kinesis-video-media": ["GetMedia"],
}
SHAPE_KEYS = ["type", "required", "members", "member", "key", "value", "min", "max", "enum", "timestampFormat",
              "streaming", "payload", "exception", "error"]
MEMBER_KEYS = ["shape", "location", "locationName"]


def main():
    root = os.path.join(os.path.dirname(botocore.__file__), "data")
    for service, ops in OPS.items():
        base = os.path.join(root, service, "2017-09-30")
        path = os.path.join(base, "service-2.json")
        opener = (lambda: gzip.open(path + ".gz", "rt")) if not os.path.exists(path) else (lambda: open(path))
        with opener() as f:
            model = json.load(f)
        with open(os.path.join(base, "paginators-1.json")) as f:
            pages = json.load(f)["pagination"]
        out = {"metadata": {k: model["metadata"][k] for k in
                            ["apiVersion", "endpointPrefix", "protocol", "serviceFullName", "serviceId",
                             "signatureVersion"]},
               "operations": {}, "shapes": {}}
        todo = []
        for op in ops:
            o = model["operations"][op]
            t = {"name": o["name"], "http": o["http"], "input": o["input"], "output": o["output"],
                 "errors": o.get("errors", [])}
            if op in pages:
                t["pagination"] = pages[op]
            out["operations"][op] = t
            todo += [o["input"]["shape"], o["output"]["shape"]] + [e["shape"] for e in o.get("errors", [])]
        while todo:
            name = todo.pop()
            if name in out["shapes"]:
                continue
            s = model["shapes"][name]
            t = {k: s[k] for k in SHAPE_KEYS if k in s}
            if "members" in t:
                t["members"] = {m: {k: v[k] for k in MEMBER_KEYS if k in v} for m, v in s["members"].items()}
                todo += [v["shape"] for v in s["members"].values()]
            for k in ["member", "key", "value"]:
                if k in t:
                    t[k] = {"shape": s[k]["shape"]}
                    todo.append(s[k]["shape"])
            out["shapes"][name] = t
        out["shapes"] = dict(sorted(out["shapes"].items()))
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), service + ".json"), "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
