// /metrics (Prometheus text, unsigned like /healthz) read into figures: totals and rates between two reads,
// for the server and per stream (the openkvs_stream_* series, labelled stream="<name>"; docs/console.md).

// A label value as the text format escapes it: \\, \" and \n.
const unescape = (v) => v.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));

// Parses the text exposition into [name, labels, value] samples.
export function parse(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = unescape(l[2]);
    out.push([m[1], labels, Number(m[3])]);
  }
  return out;
}

const sum = (samples, name, pred = () => true) =>
  samples.filter(([n, l]) => n === name && pred(l)).reduce((a, [, , v]) => a + v, 0);

// The server's totals in one read.
export function totals(samples) {
  const hls = (l) => l.resource && (l.resource.startsWith("/hls/") || l.resource.startsWith("/dash/"));
  return {
    fragments: sum(samples, "openkvs_fragments_ingested_total"),
    bytes: sum(samples, "openkvs_ingested_bytes_total"),
    producers: sum(samples, "openkvs_put_media_connections"),
    mediaRequests: sum(samples, "openkvs_http_requests_total", hls),
    mediaBytes: sum(samples, "openkvs_http_response_bytes_total", hls),
  };
}

// The server's rates between two reads of totals `seconds` apart (null without a previous read).
export function rates(now, previous, seconds) {
  const rate = (k) => (previous && seconds > 0 ? Math.max(0, (now[k] - previous[k]) / seconds) : null);
  return {
    ingestBytesPerSecond: rate("bytes"),
    fragmentsPerSecond: rate("fragments"),
    mediaRequestsPerSecond: rate("mediaRequests"),
    mediaBytesPerSecond: rate("mediaBytes"),
  };
}

const STREAM = "openkvs_stream_";

// Every stream with series on this node: Map name → { fragments, bytes, lastPersistedMs, viewers, mediaRequests,
// latency: { le: [upper bounds, s], counts: [cumulative], count, sum } }.
export function streams(samples) {
  const out = new Map();
  const of = (name) => {
    if (!out.has(name)) {
      out.set(name, {
        fragments: 0, bytes: 0, lastPersistedMs: null, viewers: 0, mediaRequests: 0,
        latency: { le: [], counts: [], count: 0, sum: 0 },
      });
    }
    return out.get(name);
  };
  for (const [name, labels, value] of samples) {
    if (!name.startsWith(STREAM) || labels.stream === undefined) continue;
    const s = of(labels.stream);
    switch (name.slice(STREAM.length)) {
      case "fragments_ingested_total": s.fragments = value; break;
      case "ingested_bytes_total": s.bytes = value; break;
      case "last_persisted_timestamp_seconds": s.lastPersistedMs = value * 1000; break;
      case "viewers": s.viewers = value; break;
      case "media_requests_total": s.mediaRequests = value; break;
      case "persisted_latency_seconds_bucket":
        if (labels.le !== "+Inf") { s.latency.le.push(Number(labels.le)); s.latency.counts.push(value); }
        break;
      case "persisted_latency_seconds_count": s.latency.count = value; break;
      case "persisted_latency_seconds_sum": s.latency.sum = value; break;
      default: break;
    }
  }
  return out;
}

// The bucket bound under which `q` of the observations fall (a histogram only bounds a quantile from above);
// Infinity when it is past the last bound, null with no observation.
export function quantileBound(latency, q) {
  if (!latency.count) return null;
  const want = q * latency.count;
  for (let i = 0; i < latency.le.length; i++) if (latency.counts[i] >= want) return latency.le[i];
  return Infinity;
}

// One stream's figures between two of its readings `seconds` apart (`before` may be missing: the first read, or a
// stream new on this node): ingest bytes/s and fragments/s, and the PERSISTED latency of the fragments persisted
// in between (mean and 95th-percentile bound), else of every fragment so far.
export function streamFigures(now, before, seconds) {
  const rate = (k) => (before && seconds > 0 ? Math.max(0, (now[k] - before[k]) / seconds) : null);
  let latency = now.latency;
  if (before && now.latency.count > before.latency.count && before.latency.le.length === now.latency.le.length) {
    latency = {
      le: now.latency.le,
      counts: now.latency.counts.map((c, i) => c - before.latency.counts[i]),
      count: now.latency.count - before.latency.count,
      sum: now.latency.sum - before.latency.sum,
    };
  }
  return {
    ingestBytesPerSecond: rate("bytes"),
    fragmentsPerSecond: rate("fragments"),
    latencyMeanMs: latency.count ? (latency.sum / latency.count) * 1000 : null,
    latencyP95Ms: latency.count ? quantileBound(latency, 0.95) * 1000 : null,
    latencyCount: latency.count,
    viewers: now.viewers,
    lastPersistedMs: now.lastPersistedMs,
  };
}

export async function read() {
  const r = await fetch("/metrics", { cache: "no-store", credentials: "omit" });
  if (!r.ok) throw new Error(`/metrics: HTTP ${r.status}`);
  return parse(await r.text());
}
