// Debian's Chromium as the browser tests launch it through playwright-core: never a downloaded browser
// (executablePath is the system one; CHROMIUM_PATH overrides it), headless, no sandbox, no GPU, nothing
// fetched in the background, media allowed to autoplay muted.

export { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
  "--disable-sync", "--disable-quic", "--no-first-run", "--autoplay-policy=no-user-gesture-required", "--mute-audio",
];
