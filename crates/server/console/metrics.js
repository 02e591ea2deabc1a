// /metrics (Prometheus text, unsigned like /healthz) read into figures: totals and rates between two reads.

// Parses the text exposition into [name, labels, value] samples.
export function parse(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push([m[1], labels, Number(m[3])]);
  }
  return out;
}

const sum = (samples, name, pred = () => true) =>
  samples.filter(([n, l]) => n === name && pred(l)).reduce((a, [, , v]) => a + v, 0);

// The server's figures now: counters, and rates against the previous read.
export function figures(samples, previous, seconds) {
  const hls = (l) => l.resource && (l.resource.startsWith("/hls/") || l.resource.startsWith("/dash/"));
  const now = {
    fragments: sum(samples, "openkvs_fragments_ingested_total"),
    bytes: sum(samples, "openkvs_ingested_bytes_total"),
    producers: sum(samples, "openkvs_put_media_connections"),
    mediaRequests: sum(samples, "openkvs_http_requests_total", hls),
    mediaBytes: sum(samples, "openkvs_http_response_bytes_total", hls),
  };
  const rate = (k) => (previous && seconds > 0 ? Math.max(0, (now[k] - previous[k]) / seconds) : null);
  return {
    now,
    ingestBytesPerSecond: rate("bytes"),
    fragmentsPerSecond: rate("fragments"),
    mediaRequestsPerSecond: rate("mediaRequests"),
    mediaBytesPerSecond: rate("mediaBytes"),
  };
}

export async function read() {
  const r = await fetch("/metrics", { cache: "no-store", credentials: "omit" });
  if (!r.ok) throw new Error(`/metrics: HTTP ${r.status}`);
  return parse(await r.text());
}
