#!/usr/bin/env node
// Drives the openkvs web console (/console/) in Debian's headless Chromium (playwright-core; no browser is
// downloaded) through a user's whole visit, and prints one JSON line per step and a final {"result": …}.
//
//   node console.mjs --url http://127.0.0.1:PORT/console/ --access-key AK --secret-key SK --stream NAME --out DIR
//   node console.mjs --url http://127.0.0.1:PORT/console/ --open 1 --stream NAME --out DIR
//
// Steps: a wrong secret is refused; sign in; create NAME with the form; print {"step":"created"} and wait for a
// line on stdin (the caller starts a real-time producer, then writes one); see NAME live in the list; open it,
// go live (first frame); wait, load the last 15 min, click the timeline 8 s before its right edge and play the
// archive from there (first frame, hls.playingDate); thumbnails; download the clip the pick selected into DIR;
// the axe-core check of both pages; the pages at a phone's width; delete NAME. Screenshots go to DIR.
// The page's SHA-256 fallback is compared with WebCrypto, and a synthetic 100,000-fragment archive is drawn by
// the same timeline code to time it.
// With --open (a server without --credentials, on loopback): no sign-in may show; create NAME, print
// {"step":"created"} and wait as above; see NAME live in the list with its ingest rate; count the list's API calls
// over 12 s; open it, go live, and read
// the stream's facts once /metrics counts the player as a viewer. Exit code: 0 when the result was printed (the caller judges it),
// 2 on bad usage or a launch failure.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { CHROMIUM, CHROMIUM_ARGS, chromium } from "./chromium.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const AXE = fs.readFileSync(path.join(HERE, "node_modules/axe-core/axe.min.js"), "utf8");

function parseArgs(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i += 2) o[argv[i].replace(/^--/, "")] = argv[i + 1];
  for (const k of ["url", ...(o.open ? [] : ["access-key", "secret-key"]), "stream", "out"]) {
    if (!o[k]) { console.error(`usage: console.mjs --url U (--access-key AK --secret-key SK | --open 1) --stream NAME --out DIR (missing --${k})`); process.exit(2); }
  }
  return o;
}

const emit = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

// Creates `name` with the form (tags site=e2e, camera=door), prints {"step":"created"} and waits for the caller's
// line (its producer is running).
async function createStream(page, name, result, step) {
  const create = page.locator("#create-form");
  await create.getByLabel("Name", { exact: true }).fill(name);
  await create.getByLabel("Retention (hours)").fill("24");
  await create.getByLabel("Tags").fill("site=e2e, camera=door");
  await page.getByRole("button", { name: "Create stream" }).click();
  await page.getByRole("heading", { name }).waitFor();
  await page.locator("#tags li span").first().waitFor();
  result.tagsShown = await page.locator("#tags li span").allTextContents();
  step("created");
  await lines.next();
}

// The list (loaded afresh) once the stream's row is live and shows an ingest rate; its cells go to result.listRow.
async function liveRow(page, opt, result) {
  await page.goto(`${opt.url}#/`);
  const row = page.getByRole("row").filter({ has: page.getByRole("link", { name: opt.stream }) });
  await row.locator(".badge.live").waitFor({ timeout: 45000 });
  await row.locator("td", { hasText: /[kM]B\/s$/ }).waitFor({ timeout: 15000 });
  result.listRow = await row.locator("td").allTextContents();
  return row;
}

// From the list's row, the stream's page and *Go live* until the first frame; its figure goes to result.live.
async function goLive(page, row, opt, result, figures) {
  await row.getByRole("link", { name: opt.stream }).click();
  await page.getByRole("heading", { name: opt.stream }).waitFor();
  await page.getByRole("button", { name: "Go live" }).click();
  await page.locator("#playing", { hasText: "first frame" }).waitFor({ timeout: 45000 });
  result.live = (await figures()).firstFrameMs.at(-1);
}

// The visit of a server without credentials: the console opens on the streams, no sign-in.
async function openVisit({ page, opt, result, shot, step, figures }) {
  await page.goto(opt.url, { waitUntil: "load" });
  await page.getByRole("heading", { name: "Streams" }).waitFor();
  result.signInVisible = await page.locator("#sign-in").isVisible();
  result.signOutVisible = await page.locator("#sign-out").isVisible();
  result.who = await page.locator("#who").textContent();
  step("opened");
  await createStream(page, opt.stream, result, step);
  const row = await liveRow(page, opt, result);
  await shot("open-streams");
  step("live-in-list");
  // The list's cost: the API calls it makes in 12 s (a refresh reads /metrics once).
  const calls = { listFragments: 0, metrics: 0, listStreams: 0 };
  const count = (r) => {
    const op = new URL(r.url()).pathname.slice(1);
    if (op in calls) calls[op]++;
  };
  page.on("request", count);
  await page.waitForTimeout(12000);
  page.off("request", count);
  result.listCalls = calls;
  await goLive(page, row, opt, result, figures);
  // The stream's /metrics figures: the player counted as a viewer (within a 5-s refresh), PERSISTED latency shown.
  const viewers = page.locator("#stream-facts dt", { hasText: "Viewers" }).locator("xpath=following-sibling::dd[1]");
  await viewers.filter({ hasText: /^[1-9]/ }).waitFor({ timeout: 15000 });
  result.liveCurrentTime = await page.evaluate(() => document.getElementById("video").currentTime);
  result.facts = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll("#stream-facts dt")]
    .map((dt) => [dt.textContent, dt.nextElementSibling.textContent])));
  await shot("open-stream-live");
  step("playing-live");
}

// The whole visit of a server with credentials (see the top of this file).
async function fullVisit({ page, opt, result, shot, step, figures, axe }) {
  await page.goto(opt.url, { waitUntil: "load" });
  const signIn = page.getByRole("heading", { name: "Sign in" });
  await signIn.waitFor();
  await shot("1-sign-in");
  await page.getByLabel("Access key ID").fill(opt["access-key"]);
  await page.getByLabel("Secret access key").fill(`${opt["secret-key"]}-wrong`);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#status.error").waitFor();
  result.wrongSecretStatus = await page.locator("#status").textContent();
  await axe("sign-in");
  await page.getByLabel("Secret access key").fill(opt["secret-key"]);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Streams" }).waitFor();
  result.who = await page.locator("#who").textContent();
  result.storage = await page.evaluate(() => ({ session: Object.keys(sessionStorage), local: Object.keys(localStorage), cookie: document.cookie }));
  step("signed-in");

  // SHA-256 in plain JS (for http pages on other hosts) against WebCrypto.
  result.sha256Agrees = await page.evaluate(async () => {
    const base = document.querySelector("script[type=module]").src.replace(/app\.js$/, "");
    const m = await import(`${base}sigv4.js`);
    const enc = new TextEncoder();
    const inputs = ["", "abc", "a".repeat(55), "a".repeat(56), "a".repeat(64), "é".repeat(1000)];
    for (const s of inputs) {
      const d = enc.encode(s);
      const web = new Uint8Array(await crypto.subtle.digest("SHA-256", d));
      if (m.hex(m.sha256Js(d)) !== m.hex(web)) return `sha256 differs on ${s.length} chars`;
      const key = await crypto.subtle.importKey("raw", enc.encode(s.slice(0, 100) || "k"), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
      const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode("data")));
      if (m.hex(m.hmacJs(enc.encode(s.slice(0, 100) || "k"), enc.encode("data"))) !== m.hex(mac)) return `hmac differs on ${s.length} chars`;
    }
    return true;
  });

  await createStream(page, opt.stream, result, step);
  const row = await liveRow(page, opt, result);
  await shot("2-streams");
  await axe("streams");
  step("live-in-list");

  await goLive(page, row, opt, result, figures);
  result.liveText = await page.locator("#playing").textContent();
  await page.waitForTimeout(3000);
  result.liveCurrentTime = await page.evaluate(() => document.getElementById("video").currentTime);
  // The camera's sound plays too: hls.js loads the audio rendition (EXT-X-MEDIA) and Chromium decodes it.
  await page.waitForFunction(() => document.getElementById("video").webkitAudioDecodedByteCount > 0,
    null, { timeout: 20000 }).catch(() => {});
  result.liveAudioDecodedBytes = await page.evaluate(() => document.getElementById("video").webkitAudioDecodedByteCount ?? null);
  await shot("3-stream-live");
  step("playing-live");

  // Let the archive grow, then pick a time 8 s before the timeline's right edge (now).
  await page.waitForTimeout(8000);
  await page.getByRole("button", { name: "15 min" }).click();
  await page.waitForFunction(() => window.consoleFigures.draws.length >= 2);
  // Zoom to the last ~40 s so a click has second precision.
  const box = await page.locator("#timeline").boundingBox();
  await page.locator("#timeline").focus();
  for (let i = 0; i < 14; i++) await page.keyboard.press("+");
  await page.keyboard.press("End");
  const view = await page.evaluate(() => window.consoleFigures.draws.at(-1));
  const x = box.x + box.width * 0.8;
  await page.mouse.click(x, box.y + box.height / 2);
  await page.locator("#playing", { hasText: "archive" }).waitFor();
  await page.locator("#playing", { hasText: "first frame" }).waitFor({ timeout: 45000 });
  await page.waitForTimeout(2000);
  const f = await figures();
  result.archive = f.firstFrameMs.at(-1);
  result.archiveText = await page.locator("#playing").textContent();
  result.archivePlayingDate = await page.evaluate(() => {
    const v = document.getElementById("video");
    return { currentTime: v.currentTime, paused: v.paused };
  });
  result.draw15min = view;
  result.timelineText = await page.locator("#timeline-figures").textContent();
  await page.locator("#thumbs img").first().waitFor({ timeout: 45000 });
  result.thumbnails = await page.locator("#thumbs img").count();
  result.thumbnailLabels = await page.locator("#thumbs button").evaluateAll((bs) => bs.map((b) => b.getAttribute("aria-label")));
  await shot("4-stream-archive");
  step("playing-archive");

  // The clip the pick selected (10 s from the picked time).
  result.clipRange = [await page.getByLabel("From", { exact: true }).inputValue(), await page.getByLabel("To", { exact: true }).inputValue()];
  const [download] = await Promise.all([
    page.waitForEvent("download", { timeout: 60000 }),
    page.getByRole("button", { name: "Download clip (MP4)" }).click(),
  ]);
  result.clipFile = path.join(opt.out, download.suggestedFilename());
  await download.saveAs(result.clipFile);
  step("clip");

  // Settings: retention up, a tag removed.
  await page.locator("#retention-form").getByLabel("Retention (hours)").fill("48");
  await page.getByRole("button", { name: "Change retention" }).click();
  await page.locator("#stream-facts dd", { hasText: "48 h" }).waitFor();
  await page.getByRole("button", { name: "Remove tag camera" }).click();
  await page.locator("#tags li", { hasText: "camera" }).waitFor({ state: "detached" });
  result.tagsAfter = await page.locator("#tags li span").allTextContents();
  await axe("stream");

  // A synthetic archive of 100,000 one-second fragments (a 10-min gap after every 5,000) drawn by the same code.
  result.synthetic = await page.evaluate(async () => {
    const base = document.querySelector("script[type=module]").src.replace(/app\.js$/, "");
    const { Timeline } = await import(`${base}timeline.js`);
    const canvas = document.createElement("canvas");
    canvas.style.width = "1200px";
    canvas.style.height = "90px";
    document.body.append(canvas);
    const n = 100000, start = new Float64Array(n), length = new Float64Array(n).fill(1000);
    const t0 = Date.UTC(2026, 0, 1); // 100,000 s and 19 gaps: about 31 h
    for (let i = 0, t = t0; i < n; i++, t += 1000) { if (i % 5000 === 0 && i) t += 600e3; start[i] = t; }
    const tl = new Timeline(canvas);
    tl.setData(start, length, [t0, start[n - 1] + 1000]);
    const draws = [];
    for (let z = 0; z < 20; z++) { tl.zoom(z < 10 ? 0.6 : 1 / 0.6); draws.push(tl.lastDraw.ms); }
    tl.setView(t0, start[n - 1] + 1000);
    const whole = tl.lastDraw;
    canvas.remove();
    draws.sort((a, b) => a - b);
    return { fragments: n, whole, p50: draws[10], max: draws[19] };
  });

  // A phone's width.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  result.phone = { stream: await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth })) };
  await shot("5-stream-phone");
  await page.goto(`${opt.url}#/`);
  await row.waitFor();
  result.phone.streams = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }));
  // The row's live/idle badge is on the screen, not scrolled off to the right. Once the list shows (a row
  // from before can still be in the DOM of the hidden view), measured in the page in one step: the list
  // redraws its rows every 5 s, so a box read across two round trips can find it detached.
  await row.locator(".badge").waitFor({ state: "visible", timeout: 15000 });
  result.phone.badgeRight = await row.locator(".badge").evaluate((b) => {
    const r = b.getBoundingClientRect();
    return r.width > 0 ? r.right : null;
  });
  await shot("6-streams-phone");
  await page.setViewportSize({ width: 1280, height: 900 });

  // Delete.
  await row.getByRole("link", { name: opt.stream }).click();
  await page.getByRole("button", { name: "Delete stream" }).click();
  await page.getByRole("heading", { name: "Streams" }).waitFor();
  await page.locator("#status", { hasText: "Deleted" }).waitFor();
  await page.waitForTimeout(500);
  result.rowsAfterDelete = await page.getByRole("link", { name: opt.stream, exact: true }).count();
  step("deleted");
  result.figures = await figures();
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  const result = { screenshots: {}, console: [], pageErrors: [], cspViolations: [], failedRequests: [], axe: {}, steps: [] };
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "openkvs-chromium-"));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30000, acceptDownloads: true,
      viewport: { width: 1280, height: 900 }, env: { ...process.env, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: "1" },
    });
  } catch (e) {
    console.error(`chromium launch failed: ${e}`);
    process.exit(2);
  }
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(30000);
  page.on("console", (m) => { if (result.console.length < 100) result.console.push(`${m.type()}: ${m.text()}`); });
  page.on("pageerror", (e) => result.pageErrors.push(String(e)));
  page.on("requestfailed", (r) => { if (result.failedRequests.length < 50) result.failedRequests.push(`${r.url().replace(/SessionToken=[^&]+/, "…")} ${r.failure()?.errorText}`); });
  page.on("dialog", (d) => d.accept());
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const shot = async (name) => {
    const file = path.join(opt.out, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    result.screenshots[name] = file;
  };
  const step = (name, extra = {}) => { const s = { step: name, t: Date.now(), ...extra }; result.steps.push(s); emit(s); };
  const axe = async (name) => {
    await page.evaluate(AXE);
    const r = await page.evaluate(() => window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] }));
    result.axe[name] = {
      violations: r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) })),
      passes: r.passes.length,
    };
  };
  const figures = () => page.evaluate(() => JSON.parse(JSON.stringify(window.consoleFigures)));
  try {
    const visit = { page, opt, result, shot, step, figures, axe };
    await (opt.open ? openVisit(visit) : fullVisit(visit));
    result.cspViolations = await page.evaluate(() => window.__csp);
  } catch (e) {
    result.error = String(e?.stack || e);
    try { await shot("error"); } catch (_) { /* ignore */ }
  } finally {
    await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  emit({ result });
  process.exit(0);
}

main().catch((e) => { console.error(e?.stack || String(e)); process.exit(2); });
