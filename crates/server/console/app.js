// openkvs console: hash-routed views over the KVS API (api.js, SigV4-signed in the tab) and /metrics.
//   #/                the streams, create a stream, server figures
//   #/streams/<name>  one stream: facts, live and archive playback, timeline, thumbnails, clip, settings

import { Api } from "./api.js";
import { Timeline, clock } from "./timeline.js";
import { Player } from "./player.js";
import * as metrics from "./metrics.js";

const $ = (id) => document.getElementById(id);
const CREDS_KEY = "openkvs.console.credentials";
// A server without --credentials (loopback only) accepts any well-formed signature: the console first tries
// these, and asks for a key only when the server refuses them.
const OPEN = { accessKeyId: "openkvs-console", secretAccessKey: "no-credentials-configured" };
const LIVE_WITHIN_MS = 10e3;

const app = {
  api: null, timers: [], stream: null, timeline: null, player: null, gen: 0, thumbGen: 0,
  reads: [], fallback: new Map(),
};
// What the console measured (timeline drawing, time to first frame): shown on the page, and read by the
// browser test.
const figures = { draws: [], firstFrameMs: [] };
window.consoleFigures = figures;

// -- small helpers ---------------------------------------------------------------------------------------

let statusTimer = null;
// A message in the status line; news (not errors) fades after 8 s.
function status(text, error = false) {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("error", error);
  clearTimeout(statusTimer);
  if (text && !error) statusTimer = setTimeout(() => { s.textContent = ""; }, 8000);
}

async function act(fn) {
  try {
    return await fn();
  } catch (e) {
    if (e.isAuth && app.api) {
      signOut(`Signed out: ${e.message}`);
      return undefined;
    }
    status(e.message || String(e), true);
    return undefined;
  }
}

function every(ms, fn) {
  app.timers.push(setInterval(() => act(fn), ms));
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props);
  e.append(...children);
  return e;
}

const rate = (bytesPerSecond) => {
  if (bytesPerSecond === null || bytesPerSecond === undefined) return "—";
  if (bytesPerSecond >= 1e6) return `${(bytesPerSecond / 1e6).toFixed(2)} MB/s`;
  return `${(bytesPerSecond / 1e3).toFixed(1)} kB/s`;
};
const when = (ms) => (ms ? new Date(ms).toLocaleString() : "—");
const localInput = (ms) => new Date(ms - new Date(ms).getTimezoneOffset() * 60e3).toISOString().slice(0, 19);

function facts(dl, pairs) {
  dl.replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", { textContent: k }), el("dd", {}, v)]));
}

function badge(live) {
  return el("span", { className: `badge ${live ? "live" : "idle"}`, textContent: live ? "live" : "idle" });
}

function show(id) {
  for (const s of ["sign-in", "streams-view", "stream-view"]) $(s).hidden = s !== id;
}

// -- sign-in ---------------------------------------------------------------------------------------------

async function probe(creds) {
  const api = new Api(creds);
  await api.call("listStreams", { MaxResults: 1 });
  return api;
}

async function start() {
  let saved = null;
  try { saved = JSON.parse(sessionStorage.getItem(CREDS_KEY) || "null"); } catch (_) { /* ignore */ }
  try {
    app.api = await probe(saved || OPEN);
    signedIn(saved ? saved.accessKeyId : null);
  } catch (e) {
    if (!e.isAuth) status(`The API did not answer: ${e.message}`, true);
    show("sign-in");
    $("access-key").focus();
    return;
  }
  route();
}

function signedIn(accessKeyId) {
  $("who").textContent = accessKeyId ? `Signed in as ${accessKeyId}` : "Open server: no credentials configured (loopback)";
  $("sign-out").hidden = !accessKeyId;
}

function signOut(message = "Signed out.") {
  sessionStorage.removeItem(CREDS_KEY);
  app.api = null;
  stopView();
  $("who").textContent = "";
  $("sign-out").hidden = true;
  show("sign-in");
  status(message, message !== "Signed out.");
}

$("sign-in-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const creds = { accessKeyId: $("access-key").value.trim(), secretAccessKey: $("secret-key").value };
  act(async () => {
    status("Signing in…");
    try {
      app.api = await probe(creds);
    } catch (err) {
      status(`Sign-in refused: ${err.message}`, true);
      return;
    }
    sessionStorage.setItem(CREDS_KEY, JSON.stringify(creds));
    $("secret-key").value = "";
    signedIn(creds.accessKeyId);
    status("");
    route();
  });
});
$("sign-out").addEventListener("click", () => signOut());

// -- routing ---------------------------------------------------------------------------------------------

function stopView() {
  app.timers.forEach(clearInterval);
  app.timers = [];
  app.gen++;
  app.player?.stop();
}

function route() {
  if (!app.api) return;
  stopView();
  const m = /^#\/streams\/(.+)$/.exec(location.hash);
  if (m) act(() => streamView(decodeURIComponent(m[1])));
  else act(listView);
  $("main").focus();
}
window.addEventListener("hashchange", route);

// -- the streams -----------------------------------------------------------------------------------------

// /metrics reads of about the last 30 s (one per refresh), newest last: rates are taken across them. Kept across
// views, so a page opened after another has its rates at once.
const METRICS_WINDOW_MS = 30e3;
// The list's fallback for streams not live on this node (docs/console.md#the-streams-lists-cost): ListFragments
// for at most this many streams per refresh, each result kept this long.
const FALLBACK_PER_REFRESH = 2;
const FALLBACK_TTL_MS = 30e3;

async function readMetrics() {
  const samples = await metrics.read();
  const read = { t: performance.now(), server: metrics.totals(samples), streams: metrics.streams(samples) };
  app.reads.push(read);
  while (app.reads.length > 2 && read.t - app.reads[0].t > METRICS_WINDOW_MS) app.reads.shift();
  return read;
}

// One stream's /metrics figures (metrics.streamFigures) across the kept reads; null when this node has no series
// of it (nothing ingested or played here since it started).
function streamMetrics(name) {
  const newest = app.reads.at(-1);
  const now = newest?.streams.get(name);
  if (!now) return null;
  const first = app.reads.find((r) => r !== newest && r.streams.has(name));
  return metrics.streamFigures(now, first?.streams.get(name), first ? (newest.t - first.t) / 1000 : 0);
}

// Last fragment, ingest rate (over the last minute) and live/idle of one stream, from ListFragments.
async function activity(name, now) {
  let f = await app.api.listFragments(name, now - 60e3, now, 5);
  const bytes = f.size.reduce((a, b) => a + b, 0);
  if (!f.start.length) f = await app.api.listFragments(name, now - 3600e3, now, 5);
  const n = f.start.length;
  const last = n ? f.start[n - 1] + f.length[n - 1] : null;
  return { last, bytesPerSecond: bytes / 60, live: last !== null && now - last < LIVE_WITHIN_MS, at: now };
}

// The list's figures of every stream: from this node's /metrics for a stream it is ingesting (one request for all
// of them); for the others (idle here, ingested by another node, or before a restart) from ListFragments, bounded:
// the FALLBACK_PER_REFRESH stalest results older than FALLBACK_TTL_MS are fetched again, the rest shown as kept.
async function listActivity(streams, now) {
  const rows = new Map();
  const stale = [];
  for (const s of streams) {
    const name = s.StreamName;
    const m = streamMetrics(name);
    if (m?.lastPersistedMs && now - m.lastPersistedMs < LIVE_WITHIN_MS) {
      rows.set(name, { last: m.lastPersistedMs, bytesPerSecond: m.ingestBytesPerSecond, live: true, from: "metrics" });
      continue;
    }
    const kept = app.fallback.get(name);
    if (!kept || now - kept.at > FALLBACK_TTL_MS) stale.push([kept?.at ?? 0, name]);
    rows.set(name, { m, kept });
  }
  stale.sort((a, b) => a[0] - b[0]);
  await Promise.all(stale.slice(0, FALLBACK_PER_REFRESH).map(async ([, name]) => {
    const a = await activity(name, now).catch(() => null);
    if (a) app.fallback.set(name, a);
    rows.get(name).kept = a ?? rows.get(name).kept;
  }));
  const known = new Set(streams.map((s) => s.StreamName));
  for (const name of app.fallback.keys()) if (!known.has(name)) app.fallback.delete(name);
  for (const [name, r] of rows) {
    if (r.from) continue;
    const { m, kept } = r;
    const last = Math.max(m?.lastPersistedMs ?? 0, kept?.last ?? 0) || null;
    rows.set(name, {
      last, bytesPerSecond: kept ? kept.bytesPerSecond : (m?.ingestBytesPerSecond ?? null),
      live: Boolean(kept?.live && now - kept.at < FALLBACK_TTL_MS), from: kept ? "ListFragments" : "metrics",
      // Not yet looked up (its turn in the fallback comes at a later refresh).
      pending: !last && !kept,
    });
  }
  return rows;
}

async function listView() {
  show("streams-view");
  document.title = "Streams · openkvs console";
  const gen = app.gen;
  const refresh = async () => {
    const [streams] = await Promise.all([app.api.listStreams(), readMetrics()]);
    const now = Date.now();
    const activity = await listActivity(streams, now);
    if (gen !== app.gen) return;
    $("no-streams").hidden = streams.length > 0;
    $("streams").querySelector("tbody").replaceChildren(...streams.map((s) => {
      const a = activity.get(s.StreamName);
      return el("tr", {},
        el("th", { scope: "row" }, el("a", { href: `#/streams/${encodeURIComponent(s.StreamName)}`, textContent: s.StreamName })),
        el("td", { textContent: s.Status }),
        el("td", { textContent: `${s.DataRetentionInHours} h` }),
        el("td", { textContent: s.MediaType || "—" }),
        el("td", { textContent: a?.last ? when(a.last) : a?.pending ? "…" : "none in the last hour" }),
        el("td", { textContent: rate(a?.bytesPerSecond) }),
        el("td", {}, badge(Boolean(a?.live))),
      );
    }));
    serverFigures();
  };
  await refresh();
  // The second read comes soon, so the rates of streams new since the last read show without waiting a period.
  app.timers.push(setTimeout(() => act(refresh), 2000));
  every(5000, refresh);
}

function serverFigures() {
  const [prev, last] = app.reads.length > 1 ? app.reads.slice(-2) : [null, app.reads[0]];
  const f = metrics.rates(last.server, prev?.server, prev ? (last.t - prev.t) / 1000 : 0);
  const perSecond = (v) => (v === null ? "—" : `${v.toFixed(1)}/s`);
  facts($("server-figures"), [
    ["Producers connected", String(last.server.producers)],
    ["Fragments ingested", `${last.server.fragments} (${perSecond(f.fragmentsPerSecond)})`],
    ["Ingest", rate(f.ingestBytesPerSecond)],
    ["HLS/DASH requests", perSecond(f.mediaRequestsPerSecond)],
    ["HLS/DASH served", rate(f.mediaBytesPerSecond)],
  ]);
}

$("create-form").addEventListener("submit", (e) => {
  e.preventDefault();
  act(async () => {
    const name = $("new-name").value.trim();
    const input = { StreamName: name, DataRetentionInHours: Number($("new-retention").value) };
    const mediaType = $("new-media-type").value.trim();
    if (mediaType) input.MediaType = mediaType;
    const tags = Object.fromEntries($("new-tags").value.split(",").map((p) => p.trim()).filter(Boolean)
      .map((p) => { const i = p.indexOf("="); return i < 0 ? [p, ""] : [p.slice(0, i).trim(), p.slice(i + 1).trim()]; }));
    if (Object.keys(tags).length) input.Tags = tags;
    await app.api.call("createStream", input);
    e.target.reset();
    status(`Created ${name}.`);
    location.hash = `#/streams/${encodeURIComponent(name)}`;
  });
});

// -- one stream ------------------------------------------------------------------------------------------

async function streamView(name) {
  show("stream-view");
  document.title = `${name} · openkvs console`;
  app.stream = { name, info: null, fragments: null, live: false };
  $("stream-title").textContent = name;
  $("playing").textContent = "";
  $("thumbs").replaceChildren();
  app.thumbView = null;
  app.player ??= new Player($("video"));
  app.timeline ??= new Timeline($("timeline"), {
    onPick: (t) => act(() => playFrom(t)),
    onSelect: ([a, b]) => setClip(a, b),
    onView: debounce(() => act(thumbnails), 400),
  });
  await loadRange(3600);
  await refreshStream();
  await renderTags();
  every(5000, refreshStream);
  every(5000, appendFragments);
}

async function refreshStream() {
  const { name } = app.stream;
  const [info] = await Promise.all([app.api.describeStream(name), readMetrics()]);
  if (!app.stream || app.stream.name !== name) return;
  // Last fragment and live/idle from the archive the timeline holds (ListFragments, appended every 5 s): no extra
  // call, and right whichever node ingests. Ingest, PERSISTED latency and viewers from this node's /metrics.
  const f = app.stream.fragments;
  const n = f?.start.length ?? 0;
  const last = n ? f.start[n - 1] + f.length[n - 1] : null;
  app.stream.info = info;
  app.stream.live = last !== null && Date.now() - last < LIVE_WITHIN_MS;
  const m = streamMetrics(name);
  app.stream.metrics = m;
  if (document.activeElement !== $("retention")) $("retention").value = info.DataRetentionInHours;
  facts($("stream-facts"), [
    ["State", badge(app.stream.live)],
    ["Status", info.Status],
    ["Retention", `${info.DataRetentionInHours} h`],
    ["Media type", info.MediaType || "—"],
    ["Last fragment", last ? when(last) : "none in the range loaded"],
    ["Ingest", m ? rate(m.ingestBytesPerSecond) : "— (none on this node)"],
    ["PERSISTED latency", latencyText(m)],
    ["Viewers", m ? `${m.viewers} (HLS/DASH sessions in the last 30 s)` : "0"],
    ["Created", when(info.CreationTime * 1000)],
    ["ARN", info.StreamARN],
  ]);
}

// "mean 4 ms, 95 % within 5 ms (6 fragments)": the fragments persisted across the kept /metrics reads, else
// every one this node persisted.
function latencyText(m) {
  if (!m?.latencyCount) return "— (none on this node)";
  const p95 = m.latencyP95Ms === Infinity ? "over 5 s" : `within ${m.latencyP95Ms < 1 ? m.latencyP95Ms : Math.round(m.latencyP95Ms)} ms`;
  return `mean ${m.latencyMeanMs.toFixed(1)} ms, 95 % ${p95} (${m.latencyCount} fragments)`;
}

// Loads the fragments of the last `seconds` into the timeline.
async function loadRange(seconds) {
  const { name } = app.stream;
  const end = Date.now();
  const begin = end - seconds * 1000;
  const t0 = performance.now();
  const f = await app.api.listFragments(name, begin, end);
  const listMs = performance.now() - t0;
  app.stream.fragments = f;
  app.timeline.setData(f.start, f.length, [begin, end]);
  const d = app.timeline.lastDraw;
  figures.draws.push({ fragments: f.start.length, drawn: d.fragments, bars: d.bars, gaps: d.gaps, drawMs: d.ms, listMs });
  $("timeline-figures").textContent = `${f.start.length} fragments${f.truncated ? " (first 200,000 only)" : ""}` +
    ` in the last ${seconds >= 3600 ? `${seconds / 3600} h` : `${seconds / 60} min`}; ${d.gaps} gaps in view;` +
    ` listed in ${listMs.toFixed(0)} ms, drawn in ${d.ms.toFixed(1)} ms.`;
}

// Every 5 s: the fragments that arrived since the last look, and the timeline's right edge moved to now.
async function appendFragments() {
  const s = app.stream, tl = app.timeline;
  const old = s.fragments;
  const n = old.start.length;
  const from = n ? old.start[n - 1] + 1 : tl.bounds[1] - 10e3;
  const now = Date.now();
  const f = await app.api.listFragments(s.name, from, now, 5);
  const cat = (a, b) => { const c = new Float64Array(a.length + b.length); c.set(a); c.set(b, a.length); return c; };
  s.fragments = { start: cat(old.start, f.start), length: cat(old.length, f.length), size: cat(old.size, f.size) };
  const [v0, v1] = tl.view;
  const following = tl.bounds[1] - v1 < 1000;
  const bounds = [tl.bounds[0], now];
  tl.setData(s.fragments.start, s.fragments.length, bounds);
  const shift = following ? now - v1 : 0;
  tl.setView(v0 + shift, v1 + shift);
}

function debounce(fn, ms) {
  let t = null;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

// Thumbnails (GetImages) at evenly spaced fragments in view; a new view cancels the old row.
async function thumbnails() {
  const s = app.stream, tl = app.timeline;
  if (!s?.fragments) return;
  const [a, b] = tl.view;
  // A live stream moves the view every 5 s: new thumbnails only when it moved by a fifth or more.
  const last = app.thumbView;
  if (last && last.name === s.name && Math.abs(a - last.a) + Math.abs(b - last.b) < (b - a) / 5) return;
  app.thumbView = { name: s.name, a, b };
  const gen = ++app.thumbGen;
  const { start, length } = s.fragments;
  const visible = [];
  for (let i = 0; i < start.length; i++) if (start[i] >= a && start[i] <= b) visible.push(i);
  const count = Math.max(2, Math.min(8, Math.floor($("thumbs").clientWidth / 130)));
  const picks = [...new Set(Array.from({ length: count }, (_, k) =>
    visible[Math.floor(((k + 0.5) / count) * visible.length)]).filter((i) => i !== undefined))];
  const list = $("thumbs");
  list.replaceChildren();
  for (const i of picks) {
    const images = await app.api.images(s.name, start[i], start[i] + length[i], length[i], 1);
    if (gen !== app.thumbGen || s !== app.stream) return;
    const img = images[0];
    if (!img) continue;
    const label = clock(img.time);
    const button = el("button", { type: "button", ariaLabel: `Play from ${label}` },
      el("img", { src: img.src, alt: "", width: 120, height: 68 }), el("span", { textContent: label }));
    button.addEventListener("click", () => act(() => playFrom(img.time)));
    list.append(el("li", {}, button));
  }
}

// Plays the archive from `t` (an ON_DEMAND session from t to now, or to 6 h later) and measures the time
// from the request to the first frame.
async function playFrom(t) {
  const since = performance.now();
  const end = Math.min(Date.now() - 1000, t + 6 * 3600e3);
  app.timeline.setCursor(t);
  setClip(t, Math.min(t + 10e3, end));
  $("playing").textContent = `Starting the archive at ${clock(t)}…`;
  const url = await app.api.hlsSession(app.stream.name, "ON_DEMAND", [t, end]);
  await startPlayer(url, false, since, `archive from ${clock(t)}`, t);
}

async function startPlayer(url, live, since, what, pickedAt = null) {
  const ms = await app.player.play(url, { live, since });
  figures.firstFrameMs.push({ mode: live ? "LIVE" : "ON_DEMAND", ms, pickedAt, playingDate: app.player.playingDate() });
  $("playing").textContent = `Playing ${what}: first frame after ${Math.round(ms)} ms.`;
}

$("go-live").addEventListener("click", () => act(async () => {
  const since = performance.now();
  $("playing").textContent = "Starting live…";
  const url = await app.api.hlsSession(app.stream.name, "LIVE");
  await startPlayer(url, true, since, "live");
}));
$("stop").addEventListener("click", () => { app.player?.stop(); $("playing").textContent = "Stopped."; });
$("video").addEventListener("timeupdate", () => {
  const d = app.player?.playingDate();
  if (d) app.timeline?.setPlayhead(d);
});

for (const b of document.querySelectorAll("[data-range]")) {
  b.addEventListener("click", () => act(() => loadRange(Number(b.dataset.range))));
}
$("zoom-in").addEventListener("click", () => app.timeline?.zoom(0.5));
$("zoom-out").addEventListener("click", () => app.timeline?.zoom(2));

function setClip(a, b) {
  $("clip-from").value = localInput(a);
  $("clip-to").value = localInput(b);
}

$("clip-form").addEventListener("submit", (e) => {
  e.preventDefault();
  act(async () => {
    const from = new Date($("clip-from").value).getTime();
    const to = new Date($("clip-to").value).getTime();
    status("Preparing the clip…");
    const blob = await app.api.clip(app.stream.name, from, to);
    const a = el("a", { href: URL.createObjectURL(blob), download: `${app.stream.name}-${localInput(from).replace(/:/g, "")}.mp4` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60e3);
    status(`Clip downloaded (${(blob.size / 1e6).toFixed(2)} MB).`);
  });
});

$("retention-form").addEventListener("submit", (e) => {
  e.preventDefault();
  act(async () => {
    const info = await app.api.describeStream(app.stream.name);
    const want = Number($("retention").value);
    const diff = want - info.DataRetentionInHours;
    if (diff === 0) return;
    await app.api.call("updateDataRetention", {
      StreamName: info.StreamName, CurrentVersion: info.Version, DataRetentionChangeInHours: Math.abs(diff),
      Operation: diff > 0 ? "INCREASE_DATA_RETENTION" : "DECREASE_DATA_RETENTION",
    });
    status(`Retention is now ${want} h.`);
    await refreshStream();
  });
});

async function renderTags() {
  const name = app.stream.name;
  const tags = await app.api.listTags(name);
  const entries = Object.entries(tags).sort(([a], [b]) => a.localeCompare(b));
  $("tags").replaceChildren(...(entries.length ? entries.map(([k, v]) => {
    const remove = el("button", { type: "button", textContent: "Remove", ariaLabel: `Remove tag ${k}` });
    remove.addEventListener("click", () => act(async () => {
      await app.api.call("untagStream", { StreamName: name, TagKeyList: [k] });
      await renderTags();
    }));
    return el("li", {}, el("span", { textContent: v ? `${k} = ${v}` : k }), remove);
  }) : [el("li", { textContent: "No tags." })]));
}

$("tag-form").addEventListener("submit", (e) => {
  e.preventDefault();
  act(async () => {
    await app.api.call("tagStream", { StreamName: app.stream.name, Tags: { [$("tag-key").value.trim()]: $("tag-value").value } });
    e.target.reset();
    await renderTags();
  });
});

$("delete").addEventListener("click", () => act(async () => {
  const name = app.stream.name;
  if (!confirm(`Delete the stream ${name} and its archive?`)) return;
  stopView();
  const info = await app.api.describeStream(name);
  await app.api.call("deleteStream", { StreamARN: info.StreamARN, CurrentVersion: info.Version });
  status(`Deleted ${name}.`);
  location.hash = "#/";
}));

act(start);
