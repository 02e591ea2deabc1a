// Plays an HLS session URL in a <video>: hls.js (vendored, loaded on first use only) where Media Source
// Extensions exist, the browser's own HLS (Safari) otherwise. Reports the time from the request to the
// first decoded frame.

let hlsModule = null;
const loadHls = async () => (hlsModule ??= (await import("./vendor/hls.min.mjs")).default);

export class Player {
  constructor(video) {
    this.video = video;
    this.hls = null;
  }

  stop() {
    this.hls?.destroy();
    this.hls = null;
    this.video.removeAttribute("src");
    this.video.load();
  }

  // Starts `url`; resolves with milliseconds from `since` (performance.now()) to the first frame shown.
  async play(url, { live, since = performance.now() }) {
    this.stop();
    const video = this.video;
    const firstFrame = new Promise((resolve, reject) => {
      const done = () => resolve(performance.now() - since);
      if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(done);
      else video.addEventListener("playing", done, { once: true });
      this.fail = reject;
    });
    const Hls = await loadHls();
    if (Hls.isSupported()) {
      // fMP4 segments need no transmuxing: no worker (and so no blob: worker in the CSP).
      const hls = new Hls({ enableWorker: false, lowLatencyMode: false, liveSyncDurationCount: 3, ...(live ? {} : { startPosition: 0 }) });
      this.hls = hls;
      hls.on(Hls.Events.ERROR, (_e, data) => {
        if (data.fatal) this.fail?.(new Error(`${data.type}: ${data.details}`));
      });
      hls.loadSource(url);
      hls.attachMedia(video);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = url;
    } else {
      throw new Error("this browser cannot play HLS");
    }
    video.play().catch(() => { /* autoplay refused: the controls remain */ });
    return firstFrame;
  }

  // The wall-clock time (epoch ms) of the frame on screen, from EXT-X-PROGRAM-DATE-TIME, if known.
  playingDate() {
    const d = this.hls?.playingDate;
    return d ? d.getTime() : null;
  }
}
