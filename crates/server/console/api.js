// The KVS API as the console uses it: every operation is a SigV4-signed JSON POST to this origin, exactly
// what the AWS SDKs send (docs/wire.md#requests). Timestamps go out and come back as epoch seconds.

import { signPost } from "./sigv4.js";

// Any region name is accepted by openkvs; it only enters the credential scope.
const SCOPE = { region: "us-east-1", service: "kinesisvideo" };

export class ApiError extends Error {
  constructor(status, type, message) {
    super(message || type || `HTTP ${status}`);
    this.status = status;
    this.type = type;
  }
  // The request was refused for its signature or key (sign in again).
  get isAuth() {
    return /UnrecognizedClient|InvalidSignature|IncompleteSignature|MissingAuthenticationToken|NotAuthorized|AccessDenied/.test(this.type || "");
  }
}

export class Api {
  constructor(creds) {
    this.creds = creds;
  }

  // POST /<operation>, signed; returns the fetch Response (ok) or throws an ApiError.
  async raw(operation, input) {
    const body = JSON.stringify(input);
    const url = `/${operation}`;
    const headers = await signPost(url, body, this.creds, SCOPE);
    const r = await fetch(url, { method: "POST", headers, body, cache: "no-store", credentials: "omit" });
    if (r.ok) return r;
    const type = (r.headers.get("x-amzn-ErrorType") || "").split(":")[0];
    let message = "";
    try {
      const j = await r.json();
      message = j.message || j.Message || "";
    } catch (_) { /* not JSON */ }
    throw new ApiError(r.status, type, message);
  }

  async call(operation, input = {}) {
    return (await this.raw(operation, input)).json();
  }

  async listStreams() {
    const out = [];
    let NextToken;
    do {
      const r = await this.call("listStreams", NextToken ? { NextToken } : {});
      out.push(...(r.StreamInfoList || []));
      NextToken = r.NextToken;
    } while (NextToken);
    return out.sort((a, b) => a.StreamName.localeCompare(b.StreamName));
  }

  describeStream(name) {
    return this.call("describeStream", { StreamName: name }).then((r) => r.StreamInfo);
  }

  async listTags(name) {
    return (await this.call("listTagsForStream", { StreamName: name })).Tags || {};
  }

  // Every fragment whose server timestamp is in [startMs, endMs], as parallel typed arrays sorted by start
  // (epoch ms), plus sizes. `maxPages` bounds the work (1000 fragments a page); `truncated` says if hit.
  async listFragments(name, startMs, endMs, maxPages = 200) {
    const rows = [];
    let NextToken;
    let pages = 0;
    do {
      const input = NextToken
        ? { StreamName: name, NextToken, MaxResults: 1000 }
        : {
          StreamName: name, MaxResults: 1000,
          FragmentSelector: {
            FragmentSelectorType: "SERVER_TIMESTAMP",
            TimestampRange: { StartTimestamp: startMs / 1000, EndTimestamp: endMs / 1000 },
          },
        };
      const r = await this.call("listFragments", input);
      for (const f of r.Fragments || []) {
        rows.push([f.ServerTimestamp * 1000, f.FragmentLengthInMilliseconds, f.FragmentSizeInBytes, f.ProducerTimestamp * 1000]);
      }
      NextToken = r.NextToken;
      pages++;
    } while (NextToken && pages < maxPages);
    // "Results are in no specific order" (the model): sort once here.
    rows.sort((a, b) => a[0] - b[0]);
    const n = rows.length;
    const start = new Float64Array(n), length = new Float64Array(n), size = new Float64Array(n);
    rows.forEach((row, i) => { start[i] = row[0]; length[i] = row[1]; size[i] = row[2]; });
    return { start, length, size, truncated: Boolean(NextToken) };
  }

  // An HLS session URL on this origin (the API answers with the configured public URL, which a browser
  // behind a proxy or on another host name may not reach; the path and token are what matter).
  async hlsSession(name, mode, range) {
    const input = {
      StreamName: name, PlaybackMode: mode, ContainerFormat: "FRAGMENTED_MP4",
      DisplayFragmentTimestamp: "ALWAYS", Expires: 3600,
    };
    if (range) {
      input.HLSFragmentSelector = {
        FragmentSelectorType: "SERVER_TIMESTAMP",
        TimestampRange: { StartTimestamp: range[0] / 1000, ...(range[1] ? { EndTimestamp: range[1] / 1000 } : {}) },
      };
      input.MaxMediaPlaylistFragmentResults = 5000;
    }
    const r = await this.call("getHLSStreamingSessionURL", input);
    const u = new URL(r.HLSStreamingSessionURL);
    return new URL(u.pathname + u.search, location.origin).href;
  }

  // JPEG thumbnails (data: URLs) sampled in [startMs, endMs] (at most 300 s apart, the API's bound).
  async images(name, startMs, endMs, intervalMs, max, width = 160) {
    const r = await this.call("getImages", {
      StreamName: name, ImageSelectorType: "SERVER_TIMESTAMP",
      StartTimestamp: startMs / 1000, EndTimestamp: endMs / 1000,
      SamplingInterval: Math.max(200, Math.round(intervalMs)), Format: "JPEG", WidthPixels: width, MaxResults: max,
    });
    return (r.Images || []).filter((i) => i.ImageContent).map((i) => ({
      time: i.TimeStamp * 1000, src: `data:image/jpeg;base64,${i.ImageContent}`,
    }));
  }

  // A non-fragmented MP4 of [startMs, endMs] as a Blob (GetClip: at most 200 fragments or 100 MB).
  async clip(name, startMs, endMs) {
    const r = await this.raw("getClip", {
      StreamName: name,
      ClipFragmentSelector: {
        FragmentSelectorType: "SERVER_TIMESTAMP",
        TimestampRange: { StartTimestamp: startMs / 1000, EndTimestamp: endMs / 1000 },
      },
    });
    return r.blob();
  }
}
