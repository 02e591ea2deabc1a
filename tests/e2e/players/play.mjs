#!/usr/bin/env node
// Play an HLS URL with hls.js, or a DASH URL with dash.js or Shaka Player (--player), in Debian's headless Chromium (playwright-core drives it; no browser is ever
// downloaded: executablePath is the system Chromium) and print one JSON line with what the player did.
//
//   node play.mjs --url URL --mode ondemand [--timeout 60] [--stall 10]
//   node play.mjs --url URL --mode live --duration 20 [--start-timeout 30]
//   node play.mjs --url URL --mode file [--timeout 60] [--stall 10]
//   --player hlsjs (default) | dashjs | shaka, with ondemand and live
//   --low-latency 0|1 (hls.js lowLatencyMode, default 1) --live-sync-rate R (hls.js maxLiveSyncPlaybackRate, default 1)
//   --interval MS (live sampling period, default 1000)
//
// The test page (page.html + hls.js from node_modules/hls.js/dist) is served by a small HTTP server started
// here on another port than the media URL's, so the page's origin differs from the openkvs server's and every
// playlist/fragment request is a CORS request.
//
// ondemand: waits for the video's `ended` event, a fatal Hls.Events.ERROR, the timeout, or the playhead stuck
//           (after it started) for --stall seconds.
// file: a progressive MP4 (GetClip) as the <video> element's src, judged as ondemand.
// live: waits until playback starts, then samples every second for --duration seconds (currentTime,
//       hls.latency, hls.playingDate vs. the wall clock) and stops early only on a fatal error.
// Exit code: 0 when the JSON was printed (the caller judges it), 2 on bad usage or a launch failure.

import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CHROMIUM, CHROMIUM_ARGS, chromium } from "./chromium.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const o = { mode: "ondemand", timeout: 60, duration: 20, startTimeout: 30, stall: 10, url: null, host: "127.0.0.1",
    player: "hlsjs", lowLatency: "1", liveSyncRate: "1", interval: 1000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => argv[++i];
    if (a === "--url") o.url = v();
    else if (a === "--mode") o.mode = v();
    else if (a === "--timeout") o.timeout = Number(v());
    else if (a === "--duration") o.duration = Number(v());
    else if (a === "--start-timeout") o.startTimeout = Number(v());
    else if (a === "--stall") o.stall = Number(v());
    else if (a === "--page-host") o.host = v();
    else if (a === "--player") o.player = v();
    else if (a === "--low-latency") o.lowLatency = v();
    else if (a === "--interval") o.interval = Number(v());
    else if (a === "--live-sync-rate") o.liveSyncRate = v();
    else { console.error(`unknown argument ${a}`); process.exit(2); }
  }
  if (!o.url || !["ondemand", "live", "file"].includes(o.mode) || !(o.player in PLAYER_SCRIPTS)) {
    console.error("usage: play.mjs --url URL --mode ondemand|live|file [--timeout S] [--duration S] [--start-timeout S]");
    process.exit(2);
  }
  return o;
}

// Each player's script in its npm package (pinned in package.json), served to the page as /player.js.
const PLAYER_SCRIPTS = {
  hlsjs: "node_modules/hls.js/dist/hls.js",
  dashjs: "node_modules/dashjs/dist/modern/umd/dash.all.debug.js",
  shaka: "node_modules/shaka-player/dist/shaka-player.compiled.debug.js",
};

// The page's origin: page.html and the player, nothing else.
function servePage(host, player) {
  const files = {
    "/page.html": [path.join(HERE, "page.html"), "text/html; charset=utf-8"],
    "/player.js": [path.join(HERE, PLAYER_SCRIPTS[player]), "text/javascript; charset=utf-8"],
  };
  const server = http.createServer((req, res) => {
    const f = files[new URL(req.url, "http://x").pathname];
    if (!f) { res.writeHead(404).end(); return; }
    res.writeHead(200, { "content-type": f[1], "cache-control": "no-store" });
    fs.createReadStream(f[0]).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve(server));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const pageServer = await servePage(opt.host, opt.player);
  const pageOrigin = `http://${opt.host}:${pageServer.address().port}`;
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "openkvs-chromium-"));
  const result = {
    mode: opt.mode, url: opt.url.replace(/SessionToken=[^&]+/, "SessionToken=…"), pageOrigin,
    mediaOrigin: new URL(opt.url).origin, browser: null, console: [], pageErrors: [], requests: { count: 0, failed: [], byPath: {} },
    corsHeaderSeen: null, samples: [], player: null,
  };
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30000,
      env: { ...process.env, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: "1" },
    });
  } catch (e) {
    console.error(`chromium launch failed: ${e}`);
    pageServer.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
    process.exit(2);
  }
  try {
    result.browser = context.browser()?.version() ?? null;
    const page = context.pages()[0] || await context.newPage();
    page.on("console", (m) => { if (result.console.length < 100) result.console.push(`${m.type()}: ${m.text()}`); });
    page.on("pageerror", (e) => result.pageErrors.push(String(e)));
    page.on("requestfailed", (r) => {
      if (result.requests.failed.length < 50) {
        result.requests.failed.push({ url: r.url().replace(/SessionToken=[^&]+/, "SessionToken=…"), error: r.failure()?.errorText });
      }
    });
    page.on("response", async (r) => {
      const u = new URL(r.url());
      if (u.origin !== result.mediaOrigin) return;
      result.requests.count++;
      const key = `${u.pathname.split("/").pop()} ${r.status()}`;
      result.requests.byPath[key] = (result.requests.byPath[key] || 0) + 1;
      if (result.corsHeaderSeen === null) {
        try { result.corsHeaderSeen = (await r.allHeaders())["access-control-allow-origin"] ?? ""; } catch (_) { /* gone */ }
      }
    });
    const progressive = opt.mode === "file" ? "&progressive=1" : "";
    await page.goto(`${pageOrigin}/page.html?src=${encodeURIComponent(opt.url)}${progressive}&player=${opt.player}&lowLatency=${opt.lowLatency}&liveSyncRate=${opt.liveSyncRate}`,
      { waitUntil: "load" });
    const state = () => page.evaluate(() => {
      const p = window.player;
      return { ...p, hls: undefined, dash: undefined, shaka: undefined, events: p.events.slice(-300) };
    });
    const sample = async () => { const s = await page.evaluate(() => window.sample()); result.samples.push(s); return s; };

    if (opt.mode === "ondemand" || opt.mode === "file") {
      const deadline = started + opt.timeout * 1000;
      let lastMove = Date.now(), lastTime = -1;
      for (;;) {
        const p = await page.evaluate(() => ({ ended: player.ended, fatal: player.fatal, supported: player.supported,
          videoErrors: player.videoErrors.length }));
        const s = await sample();
        if (s.currentTime !== lastTime) { lastTime = s.currentTime; lastMove = Date.now(); }
        result.stalledMs = Date.now() - lastMove;
        if (p.ended || p.fatal || !p.supported || p.videoErrors || Date.now() > deadline) break;
        // Playing but stuck (e.g. short of `ended`): give up after --stall seconds instead of the whole timeout.
        if (lastTime > 0 && result.stalledMs > opt.stall * 1000) break;
        await sleep(250);
      }
    } else {
      // Wait for playback to start (currentTime moving), then watch for --duration seconds.
      const startDeadline = Date.now() + opt.startTimeout * 1000;
      let playingSince = null;
      for (;;) {
        const s = await sample();
        const p = await page.evaluate(() => ({ fatal: player.fatal, supported: player.supported }));
        if (p.fatal || !p.supported) break;
        if (playingSince === null && s.currentTime > 0 && !s.paused) playingSince = Date.now();
        if (playingSince !== null && Date.now() - playingSince >= opt.duration * 1000) break;
        if (playingSince === null && Date.now() > startDeadline) break;
        await sleep(opt.interval);
      }
      result.playingSinceMs = playingSince ? playingSince - started : null;
    }
    result.player = await state();
  } finally {
    await context.close().catch(() => {});
    pageServer.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }

  // Summaries the caller prints and checks.
  const s = result.samples;
  const last = s[s.length - 1] || {};
  result.finalCurrentTime = last.currentTime ?? null;
  result.ended = !!result.player?.ended;
  result.fatal = result.player?.fatal ?? null;
  if (opt.mode === "live") {
    const playing = s.filter((x) => x.currentTime > 0);
    let maxStallMs = 0, stallStart = null;
    for (let i = 1; i < playing.length; i++) {
      if (playing[i].currentTime > playing[i - 1].currentTime) stallStart = null;
      else {
        stallStart = stallStart ?? playing[i - 1].now;
        maxStallMs = Math.max(maxStallMs, playing[i].now - stallStart);
      }
    }
    const lat = playing.map((x) => x.latency).filter((x) => x !== null);
    const wall = playing.filter((x) => x.playingDate).map((x) => (x.now - x.playingDate) / 1000);
    const pct = (a, p) => { const b = [...a].sort((x, y) => x - y); return b[Math.min(b.length - 1, Math.floor(p * b.length))]; };
    const stats = (a) => a.length ? { min: Math.min(...a), max: Math.max(...a), mean: a.reduce((x, y) => x + y, 0) / a.length,
      p50: pct(a, 0.5), p95: pct(a, 0.95), last: a[a.length - 1] } : null;
    result.live = {
      watchedSeconds: playing.length ? (playing[playing.length - 1].now - playing[0].now) / 1000 : 0,
      advancedSeconds: playing.length ? playing[playing.length - 1].currentTime - playing[0].currentTime : 0,
      maxStallMs,
      droppedFrames: playing.length ? (playing[playing.length - 1].droppedFrames ?? 0) - (playing[0].droppedFrames ?? 0) : null,
      decodedFrames: playing.length ? (playing[playing.length - 1].decodedFrames ?? 0) - (playing[0].decodedFrames ?? 0) : null,
      hlsLatency: stats(lat),
      wallClockLatency: stats(wall),  // Date.now() - hls.playingDate (EXT-X-PROGRAM-DATE-TIME of the playhead)
    };
  }
  result.elapsedMs = Date.now() - started;
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((e) => { console.error(e?.stack || String(e)); process.exit(2); });
